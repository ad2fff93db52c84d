"""Log lines that carry the request they belong to: ``text`` or ``json`` (one object per line).

Both formats apply to our ``hayhooks`` logger and to uvicorn's (``uvicorn.error``, ``uvicorn.access``),
so one server writes one consistent stream. ``RequestContextFilter`` puts the request id, the
pipeline and the worker pid on every record; handlers run synchronously in the thread that logs, so
the contextvars of the request are in reach (the executor copies them into its threads).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any, Optional

from hayhooks.observability import context

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RequestContextFilter(logging.Filter):
    """Adds ``request_id``, ``pipeline`` and ``pid`` to each record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = context.current()
        record.request_id = info.request_id if info else "-"
        record.pipeline = (info.pipeline or "-") if info else "-"
        record.pid = os.getpid()
        return True


class AccessPathFilter(logging.Filter):
    """Drops access-log records of paths under the excluded prefixes (health checks, scrapes)."""

    def __init__(self, prefixes: Sequence[str]) -> None:
        super().__init__()
        self.prefixes = tuple(p for p in prefixes if p)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.prefixes:
            return True
        args = record.args
        # uvicorn's access record: (client, method, full_path, http_version, status_code)
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2].split("?", 1)[0]
            return not path.startswith(self.prefixes)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message, logger, request_id, pipeline, pid."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            RequestContextFilter().filter(record)
        created = time.gmtime(record.created)
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "request_id": None if record.request_id == "-" else record.request_id,  # type: ignore[attr-defined]
            "pipeline": None if record.pipeline == "-" else record.pipeline,  # type: ignore[attr-defined]
            "pid": record.pid,  # type: ignore[attr-defined]
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            out.update(client=args[0], method=args[1], path=args[2], status_code=args[4])
        for key, value in record.__dict__.items():  # extra={...} given by the caller
            if key not in _STANDARD_ATTRS and key not in out and key not in ("request_id", "pipeline"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``LEVEL:     [tag] [request id] message``; the id part only inside a request. A ``None`` tag
    shows the logger's name (the lines of intercepted library loggers say where they come from)."""

    def __init__(self, tag: Optional[str] = "hayhooks") -> None:
        super().__init__()
        self.tag = tag

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            RequestContextFilter().filter(record)
        rid = record.request_id  # type: ignore[attr-defined]
        prefix = f"{record.levelname}:".ljust(10) + f"[{self.tag or record.name}] "
        if rid != "-":
            prefix += f"[{rid}] "
        text = prefix + record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def make_formatter(log_format: str, tag: Optional[str] = "hayhooks") -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter(tag)


_UVICORN_TEXT = "%(levelprefix)s %(message)s"
_UVICORN_ACCESS = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'


def uvicorn_log_config(
    log_format: str, excluded_prefixes: Sequence[str], intercepted: Optional[Sequence[str]] = None
) -> dict[str, Any]:
    """A ``logging.config`` dict for uvicorn (``log_config=``): our formats and filters, in every worker.

    ``intercepted`` (``HAYHOOKS_INTERCEPTED_LOGGERS``; ``None`` = all three) names the uvicorn
    loggers that get our format; the others keep uvicorn's own. The access-path filter applies
    either way (it is a setting of its own).
    """
    ours = set(_UVICORN_LOGGERS if intercepted is None else intercepted)
    plain: dict[str, Any] = {
        "plain": {"()": "uvicorn.logging.DefaultFormatter", "fmt": _UVICORN_TEXT},
        "plain_access": {"()": "uvicorn.logging.AccessFormatter", "fmt": _UVICORN_ACCESS},
    }
    if log_format == "json":
        formatters: dict[str, Any] = {
            "default": {"()": "hayhooks.observability.logs.JsonFormatter"},
            "access": {"()": "hayhooks.observability.logs.JsonFormatter"},
        }
    else:
        formatters = {
            "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": _UVICORN_TEXT},
            "access": {"()": "uvicorn.logging.AccessFormatter", "fmt": _UVICORN_ACCESS + " [%(request_id)s]"},
        }

    def handler(formatter: str, stream: str, *filters: str) -> dict[str, Any]:
        return {
            "formatter": formatter,
            "class": "logging.StreamHandler",
            "stream": stream,
            "filters": ["context", *filters],
        }

    def pick(name: str, kind: str) -> list[str]:
        """The handler of a uvicorn logger: ours when intercepted, uvicorn's format otherwise."""
        return [kind if name in ours else f"plain_{kind}"]

    error: dict[str, Any] = {"level": "INFO"}
    if ("uvicorn.error" in ours) != ("uvicorn" in ours):  # not the parent's format: a handler of its own
        error.update(handlers=pick("uvicorn.error", "default"), propagate=False)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "hayhooks.observability.logs.RequestContextFilter"},
            "access_paths": {
                "()": "hayhooks.observability.logs.AccessPathFilter",
                "prefixes": list(excluded_prefixes),
            },
        },
        "formatters": {**formatters, **plain},
        "handlers": {
            "default": handler("default", "ext://sys.stderr"),
            "access": handler("access", "ext://sys.stdout", "access_paths"),
            "plain_default": handler("plain", "ext://sys.stderr"),
            "plain_access": handler("plain_access", "ext://sys.stdout", "access_paths"),
        },
        "loggers": {
            "uvicorn": {"handlers": pick("uvicorn", "default"), "level": "INFO", "propagate": False},
            "uvicorn.error": error,
            "uvicorn.access": {
                "handlers": pick("uvicorn.access", "access"),
                "level": "INFO",
                "propagate": False,
            },
        },
    }


def apply_to_uvicorn(
    log_format: str, excluded_prefixes: Sequence[str], intercepted: Optional[Sequence[str]] = None
) -> None:
    """For servers started without our runner (``uvicorn hayhooks.server.app:app``): uvicorn has
    configured its loggers already; give the handlers of the intercepted ones our format and filters."""
    for name in _UVICORN_LOGGERS:
        if intercepted is not None and name not in intercepted:
            continue
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if not any(isinstance(f, RequestContextFilter) for f in handler.filters):
                handler.addFilter(RequestContextFilter())
            if log_format == "json" and not isinstance(handler.formatter, JsonFormatter):
                handler.setFormatter(JsonFormatter())
    access = logging.getLogger("uvicorn.access")
    for old in [f for f in access.filters if isinstance(f, AccessPathFilter)]:
        access.removeFilter(old)
    if excluded_prefixes:
        access.addFilter(AccessPathFilter(excluded_prefixes))
