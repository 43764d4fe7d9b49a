"""Logging set-up shared by every script: one format, to the rule's log file and to stderr.

Example:
    >>> import logging
    >>> from adapterflow.logs import setup_logging
    >>> setup_logging(None, level=logging.WARNING)  # stderr only
"""

from __future__ import annotations

import logging
import os
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_path: str | os.PathLike[str] | None, level: int = logging.INFO) -> None:
    """Send log records to ``log_path`` (when given) and to stderr, replacing earlier handlers."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
