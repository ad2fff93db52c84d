"""``ExecutionStore``: where durable executions live, shared by every worker and instance.

Every state change is a small pure function applied to one record inside the backend's atomic
read-modify-write (``_update``), so SQLite and Redis behave the same and pass one contract suite.

Ownership is a lease with a fencing token: ``claim`` bumps ``fence`` and sets ``owner`` and
``lease_expires_at``; every later write of the owner carries the fence it got and is refused
(``LeaseLost``) once another claim (a takeover after the lease expired) or a release bumped it.

On top of the fence, an owner writes only while its lease has at least
``Limits.lease_commit_safety_ms`` left by its own (monotonic) clock, measured from the start of its
last successful claim or renewal through this store object: with less left it renews first, and
refuses the write if it cannot. So a commit never lands at the edge of a lease, where a takeover by
a worker whose wall clock runs ahead, or a slow write, would race it.
"""

from __future__ import annotations

import abc
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Optional

from hayhooks.durable.errors import (
    ExecutionConflict,
    ExecutionNotFound,
    LeaseLost,
    PayloadTooLarge,
)
from hayhooks.durable.models import (
    STATUSES,
    TRUNCATED_MARKER,
    Event,
    Execution,
    dumped_size,
    request_hash,
)

# A mutation: changes the record in place and returns the events to append with it.
Mutation = Callable[[Execution], list[tuple[str, Any]]]


class Skip(Exception):
    """A mutation that writes nothing: a claim candidate another worker took first (or no longer
    due), or a renewal of an execution its own fence has already ended."""


@dataclass(frozen=True)
class Limits:
    """Size caps (2.x setting names without the ``durable_`` prefix)."""

    max_payload_bytes: int = 1_000_000
    max_progress_events: int = 100
    max_progress_event_bytes: int = 8_192
    max_stream_chunks: int = 10_000
    max_stream_chunk_bytes: int = 64_000
    max_nonterminal_executions: int = 0
    terminal_ttl_seconds: int = 604_800
    # Not a size: the lease an owner must have left (its own clock) to write; capped at a third of
    # the lease, the renewal period, so a healthy owner never has to renew before a write.
    lease_commit_safety_ms: int = 2_000

    @property
    def max_events(self) -> int:
        # Progress, chunks and a margin for status changes share one bounded log per execution.
        return self.max_progress_events + self.max_stream_chunks + 64


class ExecutionStore(abc.ABC):
    """The operations the routes and the workers use. All of them block: call them off the loop."""

    backend: str = "?"

    def __init__(self, limits: Optional[Limits] = None) -> None:
        self.limits = limits or Limits()
        # (execution_id, fence) -> lease held through this object (see ``_commit_guard``).
        self._held: dict[tuple[str, int], _HeldLease] = {}
        self._held_lock = threading.Lock()

    # -- backend primitives ----------------------------------------------------------------------
    @abc.abstractmethod
    def _insert(self, record: Execution) -> tuple[Execution, bool]:
        """Insert, unless ``record.idempotency_key`` is taken for this pipeline: then return that one.
        Enforces ``max_nonterminal_executions`` atomically with the insert."""

    @abc.abstractmethod
    def _load(self, execution_id: str) -> Optional[Execution]: ...

    @abc.abstractmethod
    def _update(self, execution_id: str, mutate: Mutation) -> Execution:
        """Atomically apply ``mutate`` to the current record and append its events."""

    def _append_fenced(self, execution_id: str, fence: int, events: list[tuple[str, Any]]) -> None:
        """Append events if ``fence`` still owns the running execution. Backends override this
        to check the fence without reading and rewriting the whole record (one per LLM token)."""

        def append(rec: Execution) -> list[tuple[str, Any]]:
            _fenced(rec, fence)
            return events

        self._update(execution_id, append)

    @staticmethod
    def _check_fence(execution_id: str, status: Optional[str], current: Optional[int], fence: int) -> None:
        if status is None:
            raise ExecutionNotFound(f"Execution '{execution_id}' not found")
        if current != fence or status != "running":
            raise LeaseLost(
                f"Execution '{execution_id}' is {status} under fence {current}; this writer holds fence {fence}"
            )

    @abc.abstractmethod
    def _candidates(self, pipelines: Iterable[str], now: float, limit: int) -> list[str]:
        """Ids that may be claimable: due queued ones and running ones whose lease expired."""

    @abc.abstractmethod
    def list_executions(
        self, pipeline: str, status: Optional[str] = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Execution], int]: ...

    @abc.abstractmethod
    def events(self, execution_id: str, after: int = 0, limit: int = 500) -> list[Event]: ...

    @abc.abstractmethod
    def counts(self) -> dict[str, int]: ...

    @abc.abstractmethod
    def queued_counts(self) -> dict[str, int]:
        """Queued executions per pipeline (pipelines with none left out)."""

    @abc.abstractmethod
    def purge(self, now: Optional[float] = None) -> int:
        """Drop terminal executions older than ``terminal_ttl_seconds``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    # -- submissions and reads -------------------------------------------------------------------
    def submit(
        self, pipeline: str, revision: str, request: Any, idempotency_key: Optional[str] = None
    ) -> tuple[Execution, bool]:
        self._check_size("request", request)
        now = time.time()
        record = Execution(
            execution_id=uuid.uuid4().hex,
            pipeline=pipeline,
            revision=revision,
            request=request,
            idempotency_key=idempotency_key,
            request_hash=request_hash(pipeline, request),
            created_at=now,
            updated_at=now,
            not_before=now,
        )
        return self._insert(record)

    def get(self, execution_id: str, pipeline: Optional[str] = None) -> Execution:
        record = self._load(execution_id)
        if record is None or (pipeline is not None and record.pipeline != pipeline):
            raise ExecutionNotFound(f"Execution '{execution_id}' not found")
        return record

    # -- claiming and leases ---------------------------------------------------------------------
    def claim(
        self,
        worker: str,
        pipelines: Iterable[str],
        lease_seconds: float,
        max_attempts: int,
        running: Collection[str] = (),
    ) -> Optional[Execution]:
        """Take one due execution (or one whose owner's lease expired) for ``worker``.

        ``running``: executions the caller is running itself. Their leases may have run out (a
        renewal late under load), but taking them over would only start a second attempt of the same
        work beside the first one, and use up the crash budget; the late renewal still extends the
        lease while no other worker has claimed it.
        """
        names = list(pipelines)
        if not names:
            return None
        now = time.time()
        for execution_id in self._candidates(names, now, 16):
            if execution_id in running:
                continue
            exhausted: list[bool] = []

            def take(rec: Execution, exhausted: list[bool] = exhausted) -> list[tuple[str, Any]]:
                at = time.time()
                due_queue = rec.status == "queued" and rec.not_before <= at
                expired = rec.status == "running" and rec.lease_expires_at < at
                if not (due_queue or expired):
                    raise Skip()
                # The crash budget counts runs lost with their worker, so suspensions and
                # application retries (which also start new runs) do not use it up.
                if expired and rec.takeovers + 1 >= max_attempts:
                    exhausted.append(True)
                    _finish(rec, "failed", at)
                    rec.error = {
                        "type": "AttemptsExhausted",
                        "message": f"The execution's worker was lost {rec.takeovers + 1} time(s); "
                        f"durable_max_run_attempts ({max_attempts}) reached",
                    }
                    return [("status", _status_event(rec))]
                rec.claimed_by_takeover = expired
                if expired:
                    rec.takeovers += 1
                rec.status = "running"
                rec.owner = worker
                rec.fence += 1
                rec.attempt += 1
                rec.lease_expires_at = at + lease_seconds
                rec.started_at = rec.started_at or at
                rec.updated_at = at
                return [("status", _status_event(rec))]

            started = time.monotonic()
            try:
                record = self._update(execution_id, take)
            except (Skip, ExecutionNotFound):
                continue
            if not exhausted:
                self._renewed(record.execution_id, record.fence, lease_seconds, started, claimed=True)
                return record
        return None

    def heartbeat(self, execution_id: str, fence: int, lease_seconds: float) -> Execution:
        """Extend the lease; ``LeaseLost`` if the execution is no longer ours. The returned record
        tells the worker whether a cancel was requested.

        An execution this very fence has ended (completed, failed, suspended: the renewal raced the
        attempt's last write) is returned as it is, unextended: it was not lost to anyone, and a
        worker must not report it so (a warning and ``lease_lost`` for most finished executions).
        """

        def extend(rec: Execution) -> list[tuple[str, Any]]:
            if rec.fence == fence and rec.status != "running":
                raise Skip()
            _fenced(rec, fence)
            rec.lease_expires_at = time.time() + lease_seconds
            return []

        started = time.monotonic()
        try:
            record = self._owned_write(execution_id, fence, extend)
        except Skip:
            return self.get(execution_id)
        self._renewed(execution_id, fence, lease_seconds, started)
        return record

    # -- the owner's own view of its lease ---------------------------------------------------------
    def _renewed(
        self, execution_id: str, fence: int, lease_seconds: float, started: float, claimed: bool = False
    ) -> None:
        """A claim or renewal that started at ``started`` (monotonic) succeeded: the store's lease
        runs at least until ``started + lease_seconds`` on this clock. A renewal that finishes after
        the execution was given up (a terminal write in between) adds nothing back."""
        with self._held_lock:
            held = self._held.get((execution_id, fence))
            until = started + lease_seconds
            if held is None and claimed:
                self._held[(execution_id, fence)] = _HeldLease(lease_seconds, until)
            elif held is not None and until > held.valid_until:
                held.valid_until = until

    def _forget(self, execution_id: str, fence: int) -> None:
        with self._held_lock:
            self._held.pop((execution_id, fence), None)

    def lease_left(self, execution_id: str, fence: int) -> Optional[float]:
        """Seconds of lease the owner of ``fence`` has left by its own clock; None if it was not
        claimed through this store object."""
        held = self._held.get((execution_id, fence))
        return None if held is None else held.valid_until - time.monotonic()

    def _commit_guard(self, execution_id: str, fence: int) -> None:
        """Refuse (``LeaseLost``) a write whose lease has less than the safety margin left and cannot
        be renewed first. A fence not claimed through this object has only the fence check."""
        held = self._held.get((execution_id, fence))
        if held is None:
            return
        margin = min(self.limits.lease_commit_safety_ms / 1000.0, held.lease_seconds / 3)
        left = held.valid_until - time.monotonic()
        if margin <= 0 or left >= margin:
            return
        try:
            self.heartbeat(execution_id, fence, held.lease_seconds)
        except Exception as exc:  # lost (the fence) or the store did not answer: no commit either way
            raise LeaseLost(
                f"Execution '{execution_id}': this worker's lease had {max(left, 0) * 1000:.0f} ms left, "
                f"less than durable_lease_commit_safety_ms ({margin * 1000:.0f} ms), and renewing it "
                f"failed ({type(exc).__name__}: {exc}); the write is refused"
            ) from exc

    def _owned_write(self, execution_id: str, fence: int, mutate: Mutation, ends: bool = False) -> Execution:
        """``_update`` for a write of the owner; ``ends``: the write gives the execution up (the
        held lease is forgotten). A write refused by the fence forgets it too."""
        try:
            record = self._update(execution_id, mutate)
        except LeaseLost:
            self._forget(execution_id, fence)
            raise
        if ends:
            self._forget(execution_id, fence)
        return record

    # -- writes of the owner (fenced) ------------------------------------------------------------
    def checkpoint(self, execution_id: str, fence: int, key: str, value: Any) -> None:
        self._check_size(f"checkpoint '{key}'", value)

        def save(rec: Execution) -> list[tuple[str, Any]]:
            _fenced(rec, fence)
            rec.checkpoints[key] = value
            rec.updated_at = time.time()
            return []

        self._commit_guard(execution_id, fence)
        self._owned_write(execution_id, fence, save)

    def report_progress(self, execution_id: str, fence: int, data: dict[str, Any]) -> None:
        data = _cap_fields(data, self.limits.max_progress_event_bytes)

        def save(rec: Execution) -> list[tuple[str, Any]]:
            _fenced(rec, fence)
            rec.progress = data
            rec.updated_at = time.time()
            return [("progress", data)]

        self._commit_guard(execution_id, fence)
        self._owned_write(execution_id, fence, save)

    def stream_chunk(self, execution_id: str, fence: int, data: Any) -> None:
        if self.limits.max_stream_chunks <= 0:
            return
        data = _cap_value(data, self.limits.max_stream_chunk_bytes)
        self._commit_guard(execution_id, fence)
        try:
            self._append_fenced(execution_id, fence, [("chunk", data)])
        except LeaseLost:
            self._forget(execution_id, fence)
            raise

    def complete(self, execution_id: str, fence: int, result: Any) -> Execution:
        if dumped_size(result) > self.limits.max_payload_bytes:
            return self.fail(
                execution_id,
                fence,
                {
                    "type": "PayloadTooLarge",
                    "message": f"The result exceeds durable_max_payload_bytes ({self.limits.max_payload_bytes})",
                },
            )

        def done(rec: Execution) -> list[tuple[str, Any]]:
            _fenced(rec, fence)
            _finish(rec, "completed", time.time())
            rec.result = result
            return [("status", _status_event(rec))]

        self._commit_guard(execution_id, fence)
        return self._owned_write(execution_id, fence, done, ends=True)

    def fail(self, execution_id: str, fence: int, error: dict[str, Any]) -> Execution:
        error = _cap_fields(error, self.limits.max_progress_event_bytes)

        def failed(rec: Execution) -> list[tuple[str, Any]]:
            _fenced(rec, fence)
            _finish(rec, "failed", time.time())
            rec.error = error
            return [("status", _status_event(rec))]

        self._commit_guard(execution_id, fence)
        return self._owned_write(execution_id, fence, failed, ends=True)

    def cancelled(self, execution_id: str, fence: int) -> Execution:
        def done(rec: Execution) -> list[tuple[str, Any]]:
            _fenced(rec, fence)
            _finish(rec, "canceled", time.time())
            return [("status", _status_event(rec))]

        self._commit_guard(execution_id, fence)
        return self._owned_write(execution_id, fence, done, ends=True)

    def retry(self, execution_id: str, fence: int, error: dict[str, Any], delay: float) -> Execution:
        """Back to the queue after ``delay`` seconds; counts as an application retry."""
        error = _cap_fields(error, self.limits.max_progress_event_bytes)

        def again(rec: Execution) -> list[tuple[str, Any]]:
            _fenced(rec, fence)
            now = time.time()
            rec.status = "queued"
            rec.owner = None
            rec.fence += 1
            rec.application_retries += 1
            rec.error = error
            rec.not_before = now + delay
            rec.updated_at = now
            return [("status", _status_event(rec))]

        self._commit_guard(execution_id, fence)
        return self._owned_write(execution_id, fence, again, ends=True)

    def suspend(self, execution_id: str, fence: int, key: str, reason: str, data: Any) -> Execution:
        self._check_size("waiting data", data)

        def wait(rec: Execution) -> list[tuple[str, Any]]:
            _fenced(rec, fence)
            rec.status = "waiting"
            rec.owner = None
            rec.fence += 1
            rec.waiting = {"key": key, "reason": reason, "data": data, "since": time.time()}
            rec.updated_at = time.time()
            return [("status", _status_event(rec))]

        self._commit_guard(execution_id, fence)
        return self._owned_write(execution_id, fence, wait, ends=True)

    def release(self, execution_id: str, fence: int) -> Execution:
        """Graceful shutdown: hand the execution back at once, without using up an attempt."""

        def back(rec: Execution) -> list[tuple[str, Any]]:
            _fenced(rec, fence)
            rec.status = "queued"
            rec.owner = None
            rec.fence += 1
            rec.attempt = max(0, rec.attempt - 1)
            rec.not_before = time.time()
            rec.updated_at = time.time()
            return [("status", _status_event(rec))]

        # No commit guard: giving the execution back commits no work, and the fence alone keeps a
        # release from undoing a takeover.
        return self._owned_write(execution_id, fence, back, ends=True)

    # -- client requests -------------------------------------------------------------------------
    def request_cancel(self, execution_id: str, pipeline: Optional[str] = None) -> Execution:
        self.get(execution_id, pipeline)

        def cancel(rec: Execution) -> list[tuple[str, Any]]:
            if rec.terminal:
                return []
            now = time.time()
            rec.cancel_requested = True
            rec.updated_at = now
            if rec.status in ("queued", "waiting"):
                rec.fence += 1
                rec.owner = None
                _finish(rec, "canceled", now)
                return [("status", _status_event(rec))]
            return []

        return self._update(execution_id, cancel)

    def resume(self, execution_id: str, data: Any, pipeline: Optional[str] = None) -> Execution:
        self.get(execution_id, pipeline)
        self._check_size("resume input", data)

        def go(rec: Execution) -> list[tuple[str, Any]]:
            if rec.status != "waiting" or rec.waiting is None:
                raise ExecutionConflict(
                    f"Execution '{execution_id}' is {rec.status}; only a waiting execution can be resumed"
                )
            now = time.time()
            rec.checkpoints[f"__resume__:{rec.waiting['key']}"] = data
            rec.waiting = None
            rec.status = "queued"
            rec.not_before = now
            rec.updated_at = now
            return [("status", _status_event(rec))]

        return self._update(execution_id, go)

    # -- helpers -----------------------------------------------------------------------------------
    def _check_size(self, what: str, value: Any) -> None:
        size = dumped_size(value)
        if size > self.limits.max_payload_bytes:
            raise PayloadTooLarge(
                f"The {what} is {size} bytes; durable_max_payload_bytes is {self.limits.max_payload_bytes}"
            )

    def empty_counts(self) -> dict[str, int]:
        return dict.fromkeys(STATUSES, 0)


@dataclass
class _HeldLease:
    lease_seconds: float
    valid_until: float  # time.monotonic() by which the store's lease surely still runs


def _fenced(rec: Execution, fence: int) -> None:
    if rec.fence != fence or rec.status != "running":
        raise LeaseLost(
            f"Execution '{rec.execution_id}' is {rec.status} under fence {rec.fence}; this writer holds fence {fence}"
        )


def _finish(rec: Execution, status: str, now: float) -> None:
    rec.status = status
    rec.owner = None
    rec.finished_at = now
    rec.updated_at = now
    rec.waiting = None if status != "waiting" else rec.waiting


def _status_event(rec: Execution) -> dict[str, Any]:
    return {"status": rec.status, "attempt": rec.attempt}


def _cap_value(value: Any, limit: int) -> Any:
    """Truncate a text (or the text of a dict's ``content``) to ``limit`` bytes, with a marker."""
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) <= limit:
            return value
        return (
            raw[: max(0, limit - len(TRUNCATED_MARKER.encode()))].decode(errors="ignore") + TRUNCATED_MARKER
        )
    if dumped_size(value) <= limit:
        return value
    if isinstance(value, dict):
        return _cap_fields(value, limit)
    return _cap_value(str(value), limit)


def _cap_fields(data: dict[str, Any], limit: int) -> dict[str, Any]:
    if dumped_size(data) <= limit:
        return data
    capped: dict[str, Any] = {}
    budget = max(64, limit // max(1, len(data)))
    for key, value in data.items():
        capped[key] = _cap_value(value if isinstance(value, str) else _plain(value), budget)
    if dumped_size(capped) > limit:
        return {"truncated": True, "message": TRUNCATED_MARKER}
    capped["truncated"] = True
    return capped


def _plain(value: Any) -> Any:
    return value if dumped_size(value) <= 64 else str(value)
