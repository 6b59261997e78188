"""``make bench``: the engine's figures beside the ceiling of the parts it is
built on, measured on this machine in one run (``python -m orderengine.local.bench``)."""
