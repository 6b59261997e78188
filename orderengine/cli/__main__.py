"""``python -m orderengine.cli``: the ``orderengine`` command."""

from orderengine.cli import main

main()
