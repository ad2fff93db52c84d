"""What belongs to the request being served: its id, and the pipeline and surface it reached.

One mutable ``RequestInfo`` per HTTP request lives in a contextvar set by the middleware. Log
records, error bodies and metrics read it; the run instrumentation fills in ``pipeline`` and
``surface`` when the request reaches a pipeline (a contextvar set deeper down would not be seen by
the middleware again, a shared mutable object is).
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from contextvars import ContextVar
from typing import Any, Optional

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128
# Characters an id may keep: enough for UUIDs, ULIDs, trace ids and "service-123:abc" styles, and
# nothing that could forge a log line or a header (no spaces, quotes, control characters).
_UNSAFE = re.compile(r"[^A-Za-z0-9._:/+=@-]")


class RequestInfo:
    """One HTTP request as observability sees it. When metrics are on, the middleware sets
    ``status`` and ``elapsed`` as the response ends and hands the request to ``series``, the
    metrics of the pipeline it reached (set by its run, looked up for a request refused before any
    run), whose next flush reads both.
    ``run`` is the request's observed run, where Haystack's component spans find it (cheaper than
    setting a contextvar per run)."""

    __slots__ = ("elapsed", "pipeline", "request_id", "run", "series", "status", "surface")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.pipeline: Optional[str] = None
        self.surface: Optional[str] = None
        self.run: Any = None
        self.series: Any = None
        self.status: Optional[int] = None  # set once the request is counted
        self.elapsed = 0.0  # seconds from the request to the end of its response, set with status


_current: ContextVar[Optional[RequestInfo]] = ContextVar("hayhooks_request", default=None)


def current() -> Optional[RequestInfo]:
    return _current.get()


def current_request_id() -> Optional[str]:
    info = _current.get()
    return info.request_id if info is not None else None


def begin(request_id: str) -> tuple[RequestInfo, object]:
    info = RequestInfo(request_id)
    return info, _current.set(info)


def end(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


class _IdSource:
    """Request ids as 32 hex characters, like a UUID's: a random per-process prefix and a counter.

    ``uuid4()`` costs a system call per request (about 3% of an echo request's time); ids only need
    to be unique, not unguessable. The prefix is redrawn in a forked child, so workers never share
    a sequence.
    """

    def __init__(self) -> None:
        self.reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = uuid.uuid4().hex[:20]
        self.counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFF:012x}"


new_request_id = _IdSource()


def sanitize_request_id(raw: Optional[str]) -> Optional[str]:
    """The caller's id if it is usable: unsafe characters dropped, at most 128 characters kept."""
    if not raw:
        return None
    cleaned = _UNSAFE.sub("", raw)[:MAX_REQUEST_ID_LENGTH]
    return cleaned or None
