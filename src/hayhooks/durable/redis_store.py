"""The Redis store, for instances on different hosts (``HAYHOOKS_DURABLE_STORE=redis``).

Each record is one JSON value; ``_update`` is an optimistic transaction (WATCH the record and its
event counter, apply the mutation, MULTI/EXEC, retry on conflict), so claims and fenced writes are
as atomic as SQLite's ``BEGIN IMMEDIATE``. Sorted sets index what workers and lists need.
Needs the ``redis`` extra: ``pip install 'hayhooks[redis]'``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any, Optional

from hayhooks.durable.errors import ExecutionNotFound, StoreUnavailable, TooManyExecutions
from hayhooks.durable.models import STATUSES, TERMINAL, Event, Execution
from hayhooks.durable.store import ExecutionStore, Limits, Mutation
from hayhooks.redis_support import RedisClientMissing, redis_module

_MAX_TX_RETRIES = 200


def _unavailable_as_503(method: Callable[..., Any]) -> Callable[..., Any]:
    """Redis down or unreachable: a 503 with the reason, not a 500 with a traceback."""

    @functools.wraps(method)
    def call(self: RedisExecutionStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (self._redis.ConnectionError, self._redis.TimeoutError) as exc:
            raise StoreUnavailable(f"The durable store (Redis) is unavailable: {exc}") from exc

    return call


class RedisExecutionStore(ExecutionStore):
    backend = "redis"

    def __init__(
        self, url: str, key_prefix: str = "hayhooks:durable", limits: Optional[Limits] = None
    ) -> None:
        super().__init__(limits)
        try:
            self._redis = redis_module("HAYHOOKS_DURABLE_STORE=redis")
        except RedisClientMissing as exc:  # a 503 naming the extra, not a 500
            raise StoreUnavailable(str(exc)) from exc
        self.client = self._redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5
        )
        self.prefix = key_prefix

    def close(self) -> None:
        self.client.close()

    # -- keys ------------------------------------------------------------------------------------
    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _index(self, pipe: Any, old: Optional[Execution], new: Execution) -> None:
        """Keep the sorted sets in line with a record's new state (inside MULTI)."""
        eid, name = new.execution_id, new.pipeline
        if old is not None and old.status != new.status:
            pipe.zrem(self._k("ps", name, old.status), eid)
        pipe.zadd(self._k("ps", name, new.status), {eid: new.created_at})
        pipe.set(self._k("f", eid), f"{new.status}:{new.fence}")  # for fenced appends
        if new.status == "queued":
            pipe.zadd(self._k("due", name), {eid: new.not_before})
        else:
            pipe.zrem(self._k("due", name), eid)
        if new.status == "running":
            pipe.zadd(self._k("lease", name), {eid: new.lease_expires_at})
        else:
            pipe.zrem(self._k("lease", name), eid)
        if new.status in TERMINAL:
            pipe.srem(self._k("active"), eid)
            ttl = self.limits.terminal_ttl_seconds
            pipe.expire(self._k("x", eid), ttl)
            pipe.expire(self._k("ev", eid), ttl)
            pipe.expire(self._k("evseq", eid), ttl)
            pipe.expire(self._k("f", eid), ttl)
            if new.idempotency_key is not None:
                pipe.expire(self._k("idem", name, new.idempotency_key), ttl)
        else:
            pipe.sadd(self._k("active"), eid)

    def _events_into(self, pipe: Any, eid: str, last: int, events: list[tuple[str, Any]]) -> None:
        if not events:
            return
        now = time.time()
        entries = [
            Event(last + i, kind, data, now).to_json() for i, (kind, data) in enumerate(events, start=1)
        ]
        pipe.rpush(self._k("ev", eid), *entries)
        pipe.ltrim(self._k("ev", eid), -self.limits.max_events, -1)
        pipe.set(self._k("evseq", eid), last + len(events))

    # -- primitives ------------------------------------------------------------------------------
    @_unavailable_as_503
    def _insert(self, record: Execution) -> tuple[Execution, bool]:
        idem_key = (
            self._k("idem", record.pipeline, record.idempotency_key)
            if record.idempotency_key is not None
            else None
        )
        for _ in range(_MAX_TX_RETRIES):
            with self.client.pipeline() as pipe:
                try:
                    watched = [self._k("active")] + ([idem_key] if idem_key else [])
                    pipe.watch(*watched)
                    if idem_key:
                        existing_id = pipe.get(idem_key)
                        if existing_id:
                            existing = self._load(existing_id)
                            if existing is not None:
                                return existing, False
                    cap = self.limits.max_nonterminal_executions
                    if cap > 0:
                        active = pipe.scard(self._k("active"))
                        if active >= cap:
                            raise TooManyExecutions(
                                f"{active} executions are queued, running or waiting; "
                                f"durable_max_nonterminal_executions is {cap}"
                            )
                    pipe.multi()
                    if idem_key:
                        pipe.set(idem_key, record.execution_id)
                    pipe.set(self._k("x", record.execution_id), record.to_doc())
                    pipe.zadd(self._k("pipe", record.pipeline), {record.execution_id: record.created_at})
                    pipe.sadd(self._k("pipelines"), record.pipeline)
                    self._index(pipe, None, record)
                    self._events_into(
                        pipe, record.execution_id, 0, [("status", {"status": "queued", "attempt": 0})]
                    )
                    pipe.execute()
                    return record, True
                except self._redis.WatchError:
                    continue
        raise StoreUnavailable("Redis transaction kept conflicting; retry")

    @_unavailable_as_503
    def _load(self, execution_id: str) -> Optional[Execution]:
        doc = self.client.get(self._k("x", execution_id))
        return Execution.from_doc(doc) if doc else None

    @_unavailable_as_503
    def _update(self, execution_id: str, mutate: Mutation) -> Execution:
        xkey, seqkey = self._k("x", execution_id), self._k("evseq", execution_id)
        for _ in range(_MAX_TX_RETRIES):
            with self.client.pipeline() as pipe:
                try:
                    pipe.watch(xkey, seqkey)
                    doc = pipe.get(xkey)
                    if not doc:
                        raise ExecutionNotFound(f"Execution '{execution_id}' not found")
                    old = Execution.from_doc(doc)
                    record = Execution.from_doc(doc)
                    events = mutate(record)
                    last = int(pipe.get(seqkey) or 0)
                    pipe.multi()
                    pipe.set(xkey, record.to_doc())
                    self._index(pipe, old, record)
                    self._events_into(pipe, execution_id, last, events)
                    pipe.execute()
                    return record
                except self._redis.WatchError:
                    continue
        raise StoreUnavailable("Redis transaction kept conflicting; retry")

    @_unavailable_as_503
    def _append_fenced(self, execution_id: str, fence: int, events: list[tuple[str, Any]]) -> None:
        fkey, seqkey = self._k("f", execution_id), self._k("evseq", execution_id)
        for _ in range(_MAX_TX_RETRIES):
            with self.client.pipeline() as pipe:
                try:
                    pipe.watch(fkey, seqkey)
                    state = pipe.get(fkey)
                    status, _, current = state.partition(":") if state else (None, "", "")
                    self._check_fence(execution_id, status, int(current) if current else None, fence)
                    last = int(pipe.get(seqkey) or 0)
                    pipe.multi()
                    self._events_into(pipe, execution_id, last, events)
                    pipe.execute()
                    return
                except self._redis.WatchError:
                    continue
        raise StoreUnavailable("Redis transaction kept conflicting; retry")

    @_unavailable_as_503
    def _candidates(self, pipelines: Iterable[str], now: float, limit: int) -> list[str]:
        found: list[str] = []
        for name in pipelines:
            found += self.client.zrangebyscore(self._k("due", name), "-inf", now, start=0, num=limit)
            found += self.client.zrangebyscore(self._k("lease", name), "-inf", f"({now}", start=0, num=limit)
        return found[: limit * 2]

    @_unavailable_as_503
    def list_executions(
        self, pipeline: str, status: Optional[str] = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Execution], int]:
        key = self._k("ps", pipeline, status) if status else self._k("pipe", pipeline)
        total = self.client.zcard(key)
        ids = self.client.zrevrange(key, offset, offset + limit - 1)
        docs = self.client.mget([self._k("x", i) for i in ids]) if ids else []
        return [Execution.from_doc(d) for d in docs if d], total

    @_unavailable_as_503
    def events(self, execution_id: str, after: int = 0, limit: int = 500) -> list[Event]:
        # Seqs are consecutive in the list (it is only trimmed from the left): index = seq - first.
        # A trim between the two reads shifts the list: then read again.
        key = self._k("ev", execution_id)
        events: list[Event] = []
        for _ in range(5):
            first_raw = self.client.lindex(key, 0)
            if first_raw is None:
                return []
            first = Event.from_json(first_raw).seq
            start = max(0, after - first + 1)
            events = [Event.from_json(r) for r in self.client.lrange(key, start, start + limit - 1)]
            if not events or events[0].seq == max(after + 1, first):
                break
        return [e for e in events if e.seq > after]

    @_unavailable_as_503
    def counts(self) -> dict[str, int]:
        counts = self.empty_counts()
        for name in self.client.smembers(self._k("pipelines")):
            for status in STATUSES:
                counts[status] += self.client.zcard(self._k("ps", name, status))
        return counts

    @_unavailable_as_503
    def queued_counts(self) -> dict[str, int]:
        names = sorted(self.client.smembers(self._k("pipelines")))
        with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zcard(self._k("ps", name, "queued"))
            sizes = pipe.execute()
        return {name: n for name, n in zip(names, sizes, strict=True) if n}

    @_unavailable_as_503
    def purge(self, now: Optional[float] = None) -> int:
        """Drop index entries of executions whose record expired (Redis expired the record itself)."""
        removed = 0
        for name in self.client.smembers(self._k("pipelines")):
            ids = self.client.zrange(self._k("pipe", name), 0, -1)
            if not ids:
                continue
            docs = self.client.mget([self._k("x", i) for i in ids])
            gone = [i for i, d in zip(ids, docs, strict=True) if d is None]
            if gone:
                with self.client.pipeline(transaction=False) as pipe:
                    pipe.zrem(self._k("pipe", name), *gone)
                    for status in STATUSES:
                        pipe.zrem(self._k("ps", name, status), *gone)
                    pipe.execute()
                removed += len(gone)
        return removed
