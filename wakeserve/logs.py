"""Logging of the command line: wakeserve's own records at the chosen level, other libraries' at WARNING.

Libraries such as kafka-python and httpx log every reconnect and request at INFO; on a terminal that drowns
the status table and, in a file, the lines that matter. ``--log-level DEBUG`` lets them through again.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

THIRD_PARTY = (
    "kafka",
    "httpx",
    "httpcore",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "kserve",
    "kserve.trace",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "transformers",
    "huggingface_hub",
    "filelock",
    "grpc",
    "werkzeug",
    "moto",
    "asyncio",
)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def level_of(name: str) -> int:
    level = logging.getLevelName(name.upper())
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {name!r}: DEBUG, INFO, WARNING or ERROR")
    return level


def quiet_third_party(level: int = logging.INFO) -> None:
    """Other libraries log at WARNING and above, unless ``level`` asks for DEBUG."""
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))


def to_stderr(level: str = "INFO") -> None:
    """A command's records on stderr (commands that print results keep stdout for them)."""
    chosen = level_of(level)
    logging.basicConfig(level=chosen, format=FORMAT, stream=sys.stderr)
    quiet_third_party(chosen)


def to_file(path: Path, level: str = "INFO") -> None:
    """Every record at ``level`` to ``path``; warnings and errors also on the terminal, above the status table.

    The terminal handler writes through a console that looks ``sys.stderr`` up at each write, so records
    logged while the live table runs are drawn above it instead of through it.
    """
    from rich.console import Console
    from rich.logging import RichHandler

    chosen = level_of(level)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file_handler = logging.FileHandler(path, encoding="utf-8")
    to_file_handler.setFormatter(logging.Formatter(FORMAT))
    terminal = RichHandler(console=Console(stderr=True), show_path=False, markup=False, rich_tracebacks=False)
    terminal.setLevel(logging.WARNING)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(to_file_handler)
    root.addHandler(terminal)
    root.setLevel(chosen)
    quiet_third_party(chosen)
