"""The execution record and its events: plain data, shared by every store backend and the routes.

A record travels as one JSON document (``Execution.to_doc``) so both backends store exactly the same
thing and every state change is one pure function in ``transitions.py``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Optional

Status = Literal["queued", "running", "waiting", "completed", "failed", "canceled"]
STATUSES: tuple[str, ...] = ("queued", "running", "waiting", "completed", "failed", "canceled")
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "canceled"})
TRUNCATED_MARKER = "…[truncated by hayhooks]"


@dataclass
class Execution:
    execution_id: str
    pipeline: str
    revision: str
    request: Any
    status: str = "queued"
    attempt: int = 0  # claims so far (crash recovery budget: durable_max_run_attempts)
    application_retries: int = 0  # retries the wrapper asked for (durable_max_application_retries)
    progress: Optional[dict[str, Any]] = None
    result: Any = None
    error: Optional[dict[str, Any]] = None
    waiting: Optional[dict[str, Any]] = None
    resume_input: Any = None
    checkpoints: dict[str, Any] = field(default_factory=dict)
    cancel_requested: bool = False
    idempotency_key: Optional[str] = None
    request_hash: str = ""
    owner: Optional[str] = None
    fence: int = 0  # bumped by every claim and release: writes carrying an older one are rejected
    lease_expires_at: float = 0.0
    not_before: float = 0.0
    takeovers: int = 0
    claimed_by_takeover: bool = False  # the last claim took it from a worker whose lease expired
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    started_at: Optional[float] = None
    finished_at: Optional[float] = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_doc(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), default=str)

    @classmethod
    def from_doc(cls, doc: str | bytes) -> Execution:
        return cls(**json.loads(doc))

    def view(self, base: str = "") -> dict[str, Any]:
        """The public JSON shape of ``GET /{name}/executions/{id}`` (2.x field names)."""
        link = f"{base}/{self.pipeline}/executions/{self.execution_id}"
        return {
            "execution_id": self.execution_id,
            "pipeline": self.pipeline,
            "revision": self.revision,
            "status": self.status,
            "attempt": self.attempt,
            "worker": self.owner,
            "application_retries": self.application_retries,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
            "waiting": self.waiting,
            "cancel_requested": self.cancel_requested,
            "idempotency_key": self.idempotency_key,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "links": {
                "self": link,
                "cancel": f"{link}/cancel",
                "resume": f"{link}/resume",
                "stream": f"{link}/stream",
            },
        }


@dataclass(frozen=True)
class Event:
    """One entry of an execution's event log (SSE ``id:`` is ``seq``)."""

    seq: int
    kind: str  # "progress" | "chunk" | "status"
    data: Any
    at: float

    def to_json(self) -> str:
        return json.dumps({"seq": self.seq, "kind": self.kind, "data": self.data, "at": self.at})

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        raw = json.loads(text)
        return cls(raw["seq"], raw["kind"], raw["data"], raw["at"])


def request_hash(pipeline: str, request: Any) -> str:
    """Fingerprint of a submission, so reusing an Idempotency-Key for other work is refused."""
    body = json.dumps([pipeline, request], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def dumped_size(value: Any) -> int:
    return len(json.dumps(value, default=str).encode())


def _iso(ts: Optional[float]) -> Optional[str]:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()
