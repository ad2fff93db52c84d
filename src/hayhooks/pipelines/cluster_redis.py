"""Heartbeats in Redis, for the Redis pipelines store (``HAYHOOKS_STORE_URL``).

Every instance sees every worker of every instance (``GET /status``, ``hayhooks status``) and a
deploy waits for all of them. The liveness rules are the directory's (``Cluster._alive``): a worker
of this host is checked by pid, one of another host by its heartbeat changing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Optional

from hayhooks.errors import StoreUnavailable
from hayhooks.pipelines.cluster import Cluster, WorkerState

if TYPE_CHECKING:
    from hayhooks.pipelines.store_redis import RedisPipelineStore


class RedisCluster(Cluster):
    """Heartbeats in Redis, so every instance sees every worker (and waits for it on deploys).

    Each beat is also written to the local directory: while Redis is unreachable this instance
    still knows its own workers. Liveness rules are the directory's (``Cluster._alive``).
    """

    def __init__(
        self,
        store: RedisPipelineStore,
        heartbeat_interval: float,
        on_dead: Optional[Callable[[str], None]] = None,
    ) -> None:
        super().__init__(store.workers, heartbeat_interval, on_dead)
        self.store = store
        self.key = store.k("workers")

    def beat(
        self,
        generation: int,
        version: int,
        pipelines: int,
        *,
        seen: Optional[int] = None,
        loading: bool = False,
        served: Optional[dict[str, str]] = None,
        failed: Optional[dict[str, list[str]]] = None,
    ) -> None:
        super().beat(generation, version, pipelines, seen=seen, loading=loading, served=served, failed=failed)
        state = self._last
        if state is None or not self.store.reachable():
            return
        try:
            self.store._call(lambda: self.store.client.hset(self.key, self.id, json.dumps(state.info())))
        except StoreUnavailable:
            pass

    def leave(self) -> None:
        super().leave()
        try:
            self.store._call(lambda: self.store.client.hdel(self.key, self.id))
        except StoreUnavailable:
            pass

    def workers(self) -> list[WorkerState]:
        if not self.store.reachable():
            return super().workers()
        try:
            raw = self.store._call(lambda: self.store.client.hgetall(self.key))
        except StoreUnavailable:
            return super().workers()
        live = []
        for worker_id, text in raw.items():
            state = _parse_state(worker_id, text)
            verdict = self._alive(state) if state is not None else False
            if verdict and state is not None:
                live.append(state)
            elif verdict is False:
                self._forget(worker_id)
                if state is not None and self.on_dead is not None and state.id != self.id:
                    self.on_dead(state.id)
        # This instance's own workers always count, even before their next beat reaches Redis
        # (a Redis that just came back empty): a deploy never skips waiting for a local worker.
        known = {w.id for w in live}
        live.extend(w for w in super().workers() if w.id not in known)
        return sorted(live, key=lambda w: w.id)

    def _forget(self, worker_id: str) -> None:
        self._seen.pop(worker_id, None)
        try:
            self.store._call(lambda: self.store.client.hdel(self.key, worker_id))
        except StoreUnavailable:
            pass


def _parse_state(worker_id: str, text: str) -> Optional[WorkerState]:
    try:
        state = WorkerState(**json.loads(text))
    except (ValueError, TypeError):
        return None
    valid = (
        state.id == worker_id
        and isinstance(state.host, str)
        and isinstance(state.pid, int)
        and isinstance(state.generation, int)
        and isinstance(state.seen, int)
        and isinstance(state.updated_at, (int, float))
        and isinstance(state.served, dict)
        and isinstance(state.failed, dict)
    )
    return state if valid else None
