"""How every process of the engine logs: one format, LOG_LEVEL, and its
traces named after it."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from orderengine.observability import tracing

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def say(line: str) -> None:
    """``line`` on stdout, at once and in one write: a stack's parts share
    one output, where print's text and newline, written apart (as
    PYTHONUNBUFFERED writes them), can be split by another part's line."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def configure_logging(service: str = "orderengine", chatter: Sequence[str] = ()) -> None:
    """Logging at LOG_LEVEL (INFO by default), and the traces of this
    process, ``service`` by name (unless OTEL_SERVICE_NAME says otherwise).
    The ``chatter`` loggers show only warnings and errors at INFO."""
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format=FORMAT)
    if level == "INFO":
        for name in chatter:
            logging.getLogger(name).setLevel(logging.WARNING)
    tracing.configure(service)
