import threading
import time

import pytest

from hayhooks.pipelines.threadpool import ThreadPool


def test_threads_start_only_when_no_idle_one_can_take_the_job():
    pool = ThreadPool(8)
    assert pool.threads == 0
    for _ in range(5):  # sequential: one thread is enough
        assert pool.submit(lambda: 1).result(5) == 1
    assert pool.threads == 1
    gate = threading.Event()
    jobs = [pool.submit(gate.wait, 10) for _ in range(6)]
    time.sleep(0.2)
    assert pool.threads == 6
    gate.set()
    assert all(j.result(10) for j in jobs)
    pool.shutdown()


def test_the_bound_holds_and_extra_jobs_wait():
    pool = ThreadPool(2)
    gate = threading.Event()
    jobs = [pool.submit(gate.wait, 10) for _ in range(5)]
    time.sleep(0.2)
    assert pool.threads == 2 and sum(j.running() for j in jobs) == 2
    gate.set()
    assert all(j.result(10) for j in jobs)
    pool.shutdown()


def test_threads_are_daemons_and_idle_ones_retire():
    pool = ThreadPool(4, idle_timeout=0.2)
    names = [pool.submit(lambda: threading.current_thread()).result(5) for _ in range(1)]
    assert names[0].daemon and names[0].name.startswith("hayhooks-run")
    deadline = time.monotonic() + 10
    while pool.threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.threads == 0
    assert pool.submit(lambda: "again").result(5) == "again"  # a new thread starts when needed
    pool.shutdown()


def test_shutdown_cancels_queued_jobs_and_refuses_new_ones():
    pool = ThreadPool(1)
    gate = threading.Event()
    running = pool.submit(gate.wait, 10)
    queued = pool.submit(lambda: "never")
    time.sleep(0.1)
    pool.shutdown()
    assert queued.cancelled()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
    gate.set()
    assert running.result(5) is True


def test_exceptions_reach_the_future():
    pool = ThreadPool(1)
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(5)
    pool.shutdown()
