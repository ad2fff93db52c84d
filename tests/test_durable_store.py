"""One contract suite for every ``ExecutionStore`` backend: SQLite and a real redis-server."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.redis_support import redis_server

from hayhooks.durable.errors import (
    ExecutionConflict,
    ExecutionNotFound,
    LeaseLost,
    PayloadTooLarge,
    TooManyExecutions,
)
from hayhooks.durable.models import TRUNCATED_MARKER
from hayhooks.durable.redis_store import RedisExecutionStore
from hayhooks.durable.sqlite_store import SQLiteExecutionStore
from hayhooks.durable.store import ExecutionStore, Limits

MakeStore = Callable[..., ExecutionStore]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """A factory: every call is a new store object (a new connection, like another process)
    over the same data."""
    made: list[ExecutionStore] = []
    prefix = f"test:{uuid.uuid4().hex}"

    def make(**limits: int) -> ExecutionStore:
        lim = Limits(**limits)
        if request.param == "sqlite":
            store: ExecutionStore = SQLiteExecutionStore(tmp_path / "durable.sqlite3", lim)
        else:
            store = RedisExecutionStore(request.getfixturevalue("redis_url"), prefix, lim)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def test_submit_get_list_and_filters(make_store: MakeStore) -> None:
    store = make_store()
    first, created = store.submit("echo", "r1", {"text": "a"})
    assert created and first.status == "queued" and first.attempt == 0
    for i in range(4):
        store.submit("echo", "r1", {"text": str(i)})
    store.submit("other", "r1", {})
    assert store.get(first.execution_id).request == {"text": "a"}
    with pytest.raises(ExecutionNotFound):
        store.get(first.execution_id, pipeline="other")
    page, total = store.list_executions("echo", limit=2, offset=0)
    assert total == 5 and len(page) == 2
    rest, _ = store.list_executions("echo", limit=10, offset=2)
    assert len(rest) == 3 and not {r.execution_id for r in page} & {r.execution_id for r in rest}
    claimed = store.claim("w1", ["echo"], 30, 3)
    assert claimed is not None
    running, total_running = store.list_executions("echo", status="running")
    assert total_running == 1 and running[0].execution_id == claimed.execution_id
    assert store.counts()["queued"] == 5 and store.counts()["running"] == 1
    assert store.queued_counts() == {"echo": 4, "other": 1}


def test_idempotency_key_returns_the_same_execution(make_store: MakeStore) -> None:
    store = make_store()
    a, created_a = store.submit("echo", "r1", {"text": "a"}, idempotency_key="k1")
    b, created_b = make_store().submit("echo", "r1", {"text": "a"}, idempotency_key="k1")
    assert created_a and not created_b and a.execution_id == b.execution_id
    c, created_c = store.submit("other", "r1", {"text": "a"}, idempotency_key="k1")
    assert created_c and c.execution_id != a.execution_id


def test_claim_lease_fencing_and_takeover(make_store: MakeStore) -> None:
    store, other = make_store(), make_store()
    record, _ = store.submit("echo", "r1", {})
    first = store.claim("w1", ["echo"], 0.3, 3)
    assert first is not None and first.status == "running" and first.owner == "w1" and first.attempt == 1
    assert other.claim("w2", ["echo"], 0.3, 3) is None  # leased
    store.checkpoint(record.execution_id, first.fence, "step", 1)
    time.sleep(0.5)  # w1 stops renewing: its lease expires
    second = other.claim("w2", ["echo"], 30, 3)
    assert second is not None and second.owner == "w2" and second.fence > first.fence
    assert second.claimed_by_takeover and second.takeovers == 1 and second.attempt == 2
    assert second.checkpoints == {"step": 1}
    for stale_write in (
        lambda: store.checkpoint(record.execution_id, first.fence, "step", 2),
        lambda: store.report_progress(record.execution_id, first.fence, {"message": "x"}),
        lambda: store.stream_chunk(record.execution_id, first.fence, "token"),
        lambda: store.complete(record.execution_id, first.fence, "stale"),
        lambda: store.heartbeat(record.execution_id, first.fence, 30),
    ):
        with pytest.raises(LeaseLost):
            stale_write()
    done = other.complete(record.execution_id, second.fence, {"ok": True})
    assert done.status == "completed" and done.result == {"ok": True} and done.finished_at
    with pytest.raises(LeaseLost):
        other.complete(record.execution_id, second.fence, "twice")


def test_a_worker_does_not_take_over_what_it_is_running(make_store: MakeStore) -> None:
    """A renewal late under load lets the lease run out while the attempt goes on: its own worker
    does not start a second attempt beside it (the late renewal still holds); another worker does
    take it over."""
    store, other = make_store(), make_store()
    record, _ = store.submit("echo", "r1", {})
    mine = store.claim("w1", ["echo"], 0.2, 3)
    assert mine is not None
    time.sleep(0.3)
    assert store.claim("w1", ["echo"], 0.2, 3, running={record.execution_id}) is None
    renewed = store.heartbeat(record.execution_id, mine.fence, 0.2)
    assert renewed.owner == "w1" and renewed.fence == mine.fence and renewed.takeovers == 0
    time.sleep(0.3)
    theirs = other.claim("w2", ["echo"], 30, 3)
    assert theirs is not None and theirs.owner == "w2" and theirs.takeovers == 1 and theirs.attempt == 2


def test_heartbeat_keeps_the_lease(make_store: MakeStore) -> None:
    store, other = make_store(), make_store()
    record, _ = store.submit("echo", "r1", {})
    mine = store.claim("w1", ["echo"], 0.4, 3)
    assert mine is not None
    for _ in range(4):
        time.sleep(0.15)
        store.heartbeat(record.execution_id, mine.fence, 0.4)
        assert other.claim("w2", ["echo"], 0.4, 3) is None


def test_a_renewal_racing_the_attempts_own_last_write_is_not_a_lost_lease(make_store: MakeStore) -> None:
    """The worker's lease loop renews an execution its attempt has just completed: nothing is
    extended and nothing was lost; a renewal after another worker's takeover is still refused."""
    store, other = make_store(), make_store()
    done, _ = store.submit("echo", "r1", {})
    mine = store.claim("w1", ["echo"], 30, 3)
    assert mine is not None
    store.complete(done.execution_id, mine.fence, {"ok": True})
    late = store.heartbeat(done.execution_id, mine.fence, 30)
    assert late.status == "completed" and late.fence == mine.fence and late.result == {"ok": True}
    taken, _ = store.submit("echo", "r2", {})
    first = store.claim("w1", ["echo"], 0.2, 3)
    assert first is not None and first.execution_id == taken.execution_id
    time.sleep(0.3)
    assert other.claim("w2", ["echo"], 30, 3) is not None
    with pytest.raises(LeaseLost):
        store.heartbeat(taken.execution_id, first.fence, 30)


def test_release_hands_back_without_using_an_attempt(make_store: MakeStore) -> None:
    store = make_store()
    record, _ = store.submit("echo", "r1", {})
    mine = store.claim("w1", ["echo"], 30, 3)
    assert mine is not None
    released = store.release(record.execution_id, mine.fence)
    assert released.status == "queued" and released.attempt == 0 and released.owner is None
    again = make_store().claim("w2", ["echo"], 30, 3)
    assert again is not None and again.attempt == 1 and not again.claimed_by_takeover
    with pytest.raises(LeaseLost):
        store.checkpoint(record.execution_id, mine.fence, "k", 1)


def test_max_run_attempts_fails_an_execution_whose_workers_keep_dying(make_store: MakeStore) -> None:
    store = make_store()
    record, _ = store.submit("echo", "r1", {})
    for attempt in (1, 2):
        claimed = store.claim(f"w{attempt}", ["echo"], 0.05, 2)
        assert claimed is not None and claimed.attempt == attempt
        time.sleep(0.1)
    assert store.claim("w3", ["echo"], 0.05, 2) is None
    failed = store.get(record.execution_id)
    assert failed.status == "failed" and failed.error["type"] == "AttemptsExhausted"


def test_retry_waits_for_its_backoff(make_store: MakeStore) -> None:
    store = make_store()
    record, _ = store.submit("echo", "r1", {})
    mine = store.claim("w1", ["echo"], 30, 3)
    assert mine is not None
    queued = store.retry(record.execution_id, mine.fence, {"type": "X", "message": "later"}, delay=0.4)
    assert queued.status == "queued" and queued.application_retries == 1
    assert store.claim("w1", ["echo"], 30, 3) is None
    time.sleep(0.5)
    again = store.claim("w1", ["echo"], 30, 3)
    assert again is not None and again.execution_id == record.execution_id


def test_suspend_resume_and_cancel(make_store: MakeStore) -> None:
    store = make_store()
    record, _ = store.submit("echo", "r1", {})
    mine = store.claim("w1", ["echo"], 30, 3)
    assert mine is not None
    waiting = store.suspend(record.execution_id, mine.fence, "approval", "needs a human", {"draft": "x"})
    assert waiting.status == "waiting" and waiting.waiting["reason"] == "needs a human"
    assert store.claim("w1", ["echo"], 30, 3) is None
    resumed = store.resume(record.execution_id, {"approved": True})
    assert resumed.status == "queued" and resumed.checkpoints["__resume__:approval"] == {"approved": True}
    with pytest.raises(ExecutionConflict):
        store.resume(record.execution_id, {"approved": True})
    # cancelling a queued execution is immediate; a running one is flagged for its worker
    canceled = store.request_cancel(record.execution_id)
    assert canceled.status == "canceled"
    other, _ = store.submit("echo", "r1", {})
    running = store.claim("w1", ["echo"], 30, 3)
    assert running is not None and running.execution_id == other.execution_id
    flagged = store.request_cancel(other.execution_id)
    assert flagged.status == "running" and flagged.cancel_requested
    assert store.cancelled(other.execution_id, running.fence).status == "canceled"


def test_events_resume_after_a_seq_and_stay_bounded(make_store: MakeStore) -> None:
    store = make_store(max_stream_chunks=5, max_progress_events=2, max_stream_chunk_bytes=300)
    record, _ = store.submit("echo", "r1", {})
    mine = store.claim("w1", ["echo"], 30, 3)
    assert mine is not None
    for i in range(30):
        store.stream_chunk(record.execution_id, mine.fence, f"chunk {i}")
    events = store.events(record.execution_id)
    assert len(events) <= Limits(max_stream_chunks=5, max_progress_events=2).max_events
    assert events[-1].data == "chunk 29"
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)
    after = store.events(record.execution_id, after=seqs[-3])
    assert [e.data for e in after] == ["chunk 28", "chunk 29"]
    store.stream_chunk(record.execution_id, mine.fence, "x" * 5000)
    big = store.events(record.execution_id)[-1].data
    assert big.endswith(TRUNCATED_MARKER) and len(big.encode()) <= 300


def test_size_caps_and_admission(make_store: MakeStore) -> None:
    store = make_store(max_payload_bytes=2000, max_nonterminal_executions=2)
    with pytest.raises(PayloadTooLarge):
        store.submit("echo", "r1", {"text": "x" * 5000})
    a, _ = store.submit("echo", "r1", {})
    store.submit("echo", "r1", {})
    with pytest.raises(TooManyExecutions):
        store.submit("echo", "r1", {})
    mine = store.claim("w1", ["echo"], 30, 3)
    assert mine is not None
    too_big = store.complete(mine.execution_id, mine.fence, "y" * 5000)
    assert too_big.status == "failed" and too_big.error["type"] == "PayloadTooLarge"
    store.submit("echo", "r1", {})  # a slot was freed


def test_concurrent_claims_take_each_execution_once(make_store: MakeStore) -> None:
    store = make_store()
    ids = {store.submit("echo", "r1", {"i": i})[0].execution_id for i in range(30)}
    stores = [make_store() for _ in range(4)]
    taken: list[str] = []
    lock = threading.Lock()

    def worker(s: ExecutionStore, name: str) -> None:
        while True:
            got = s.claim(name, ["echo"], 30, 3)
            if got is None:
                return
            with lock:
                taken.append(got.execution_id)

    threads = [threading.Thread(target=worker, args=(s, f"w{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(taken) == sorted(ids)


def test_purge_drops_old_terminal_executions(make_store: MakeStore) -> None:
    store = make_store(terminal_ttl_seconds=1)
    record, _ = store.submit("echo", "r1", {})
    mine = store.claim("w1", ["echo"], 30, 3)
    assert mine is not None
    store.complete(record.execution_id, mine.fence, 1)
    keep, _ = store.submit("echo", "r1", {})
    if isinstance(store, SQLiteExecutionStore):
        assert store.purge(now=time.time() + 5) == 1
    else:
        time.sleep(1.5)  # Redis expires the record itself; purge drops its index entries
        assert store.purge() == 1
    with pytest.raises(ExecutionNotFound):
        store.get(record.execution_id)
    assert store.get(keep.execution_id).status == "queued"


def test_an_unreachable_redis_is_a_503(tmp_path: Path) -> None:
    from hayhooks.durable.errors import StoreUnavailable

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    store = RedisExecutionStore(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(StoreUnavailable) as raised:
        store.submit("echo", "r1", {})
    assert raised.value.status_code == 503 and "unavailable" in str(raised.value)


def test_suspensions_do_not_use_up_the_crash_budget(make_store: MakeStore) -> None:
    store = make_store()
    record, _ = store.submit("echo", "r1", {})
    for _ in range(3):  # three approvals in a row: three runs, no crash
        mine = store.claim("w1", ["echo"], 30, 2)
        assert mine is not None
        store.suspend(record.execution_id, mine.fence, f"k{mine.attempt}", "approve", None)
        store.resume(record.execution_id, {"ok": True})
    crashed = store.claim("w1", ["echo"], 0.05, 2)
    assert crashed is not None
    time.sleep(0.1)
    taken = store.claim("w2", ["echo"], 30, 2)  # the first crash is recovered
    assert taken is not None and taken.takeovers == 1


def test_a_write_near_the_end_of_the_lease_renews_it_first(make_store: MakeStore) -> None:
    """``lease_commit_safety_ms``: with less than the margin left (by the owner's clock since its
    last renewal) a write renews the lease before it commits; without a margin it does not."""
    store, plain, other = (
        make_store(lease_commit_safety_ms=250),
        make_store(lease_commit_safety_ms=0),
        make_store(),
    )
    guarded, _ = store.submit("echo", "r1", {})
    mine = store.claim("w1", ["echo"], 0.9, 3)  # margin min(0.25, 0.9 / 3) = 0.25 s
    unguarded, _ = plain.submit("echo", "r1", {})
    theirs = plain.claim("w2", ["echo"], 0.9, 3)
    assert mine is not None and theirs is not None and mine.execution_id == guarded.execution_id
    time.sleep(0.7)  # about 0.2 s left: less than the margin
    store.checkpoint(guarded.execution_id, mine.fence, "k", 1)
    plain.checkpoint(unguarded.execution_id, theirs.fence, "k", 1)
    left = store.lease_left(guarded.execution_id, mine.fence)
    assert left is not None and left > 0.6
    assert store.get(guarded.execution_id).lease_expires_at > time.time() + 0.6
    assert plain.get(unguarded.execution_id).lease_expires_at < time.time() + 0.3
    time.sleep(0.5)  # both claims' leases are over: only the one renewed by its write still holds
    taken = other.claim("w3", ["echo"], 30, 3)
    assert taken is not None and taken.execution_id == unguarded.execution_id
    assert other.claim("w3", ["echo"], 30, 3) is None
    assert store.complete(guarded.execution_id, mine.fence, "done").status == "completed"
    assert store.lease_left(guarded.execution_id, mine.fence) is None  # given up: forgotten


def test_an_owner_whose_lease_ran_short_is_refused_by_the_margin(make_store: MakeStore) -> None:
    """A stale owner's writes are refused by its own clock (the renewal it tries first fails), with
    a message naming the setting, before they reach the fence check."""
    store, other = make_store(lease_commit_safety_ms=1000), make_store()
    writes = {
        "checkpoint": lambda eid, fence: store.checkpoint(eid, fence, "k", 2),
        "progress": lambda eid, fence: store.report_progress(eid, fence, {"message": "x"}),
        "chunk": lambda eid, fence: store.stream_chunk(eid, fence, "token"),
        "complete": lambda eid, fence: store.complete(eid, fence, "stale"),
        "fail": lambda eid, fence: store.fail(eid, fence, {"type": "X", "message": "stale"}),
        "retry": lambda eid, fence: store.retry(eid, fence, {"type": "X", "message": "stale"}, 0),
        "suspend": lambda eid, fence: store.suspend(eid, fence, "k", "stale", None),
        "cancelled": lambda eid, fence: store.cancelled(eid, fence),
    }
    for _ in writes:
        store.submit("echo", "r1", {})
    claimed = [store.claim("w1", ["echo"], 0.3, 3) for _ in writes]
    assert all(c is not None for c in claimed)
    time.sleep(0.45)  # every lease expired; another worker takes them all over
    taken = [other.claim("w2", ["echo"], 30, 3) for _ in writes]
    assert all(t is not None for t in taken)
    for (what, write), mine in zip(writes.items(), claimed, strict=True):
        assert mine is not None
        with pytest.raises(LeaseLost) as refused:
            write(mine.execution_id, mine.fence)
        assert "durable_lease_commit_safety_ms" in str(refused.value), what
        assert store.get(mine.execution_id).owner == "w2", what


def test_a_renewal_that_cannot_reach_redis_refuses_the_write(tmp_path: Path) -> None:
    """Redis gone while the lease runs short: the write is refused as a lost lease (the attempt
    stops; another worker resumes the execution once the store is back); without the margin the
    write goes ahead and meets the outage."""
    from hayhooks.durable.errors import StoreUnavailable

    with redis_server(tmp_path / "redis") as server:
        store = RedisExecutionStore(server.url, "lease-test", Limits(lease_commit_safety_ms=1000))
        plain = RedisExecutionStore(server.url, "lease-test", Limits(lease_commit_safety_ms=0))
        guarded, _ = store.submit("echo", "r1", {})
        mine = store.claim("w1", ["echo"], 0.6, 3)  # margin 0.2 s
        unguarded, _ = plain.submit("echo", "r1", {})
        theirs = plain.claim("w2", ["echo"], 0.6, 3)
        assert mine is not None and theirs is not None and mine.execution_id == guarded.execution_id
        store.checkpoint(guarded.execution_id, mine.fence, "early", 1)  # plenty left: no renewal
        time.sleep(0.45)
        server.kill()
        with pytest.raises(LeaseLost) as refused:
            store.checkpoint(guarded.execution_id, mine.fence, "late", 2)
        assert "renewing it failed (StoreUnavailable" in str(refused.value)
        with pytest.raises(StoreUnavailable):
            plain.checkpoint(unguarded.execution_id, theirs.fence, "late", 2)
        store.close()
        plain.close()
