"""A bounded, lazily grown pool of daemon threads for sync wrapper code.

Why not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at interpreter exit, so
one sync run stuck on a dead upstream (the reason a run timed out and was detached) would keep the
process from ever exiting after a graceful shutdown. Here threads are daemons, start only when no
idle thread can take a job (a pool sized for hundreds of blocked LLM calls costs nothing until
they happen), and retire after ``idle_timeout`` seconds without work.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Optional

_STOP = None


class ThreadPool:
    def __init__(self, max_threads: int, name: str = "hayhooks-run", idle_timeout: float = 60.0) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self._name = name
        self._idle_timeout = idle_timeout
        self._jobs: queue.SimpleQueue[Optional[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]]] = (
            queue.SimpleQueue()
        )
        # One token per idle thread; a submit takes one instead of starting a thread.
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = 0
        self._started = 0
        self._closed = False

    @property
    def threads(self) -> int:
        """Threads alive now (busy or idle)."""
        return self._threads

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("thread pool is shut down")
            self._jobs.put((future, fn, args))
            if self._idle.acquire(blocking=False):
                return future
            if self._threads < self.max_threads:
                self._threads += 1
                self._started += 1
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{self._started}", daemon=True
                )
                thread.start()
        return future

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            try:
                job = jobs.get(timeout=self._idle_timeout)
            except queue.Empty:
                # Retire only if our idle token is still there: a submit that took it has queued
                # a job some thread must pick up.
                if self._idle.acquire(blocking=False):
                    with self._lock:
                        self._threads -= 1
                    return
                continue
            if job is _STOP:
                with self._lock:
                    self._threads -= 1
                return
            future, fn, args = job
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:
                    future.set_exception(exc)
                    del exc
                else:
                    future.set_result(result)
            del job, future, fn, args
            self._idle.release()

    def shutdown(self) -> None:
        """Cancel queued jobs and let idle threads exit; running jobs finish on their daemon threads."""
        with self._lock:
            self._closed = True
            threads = self._threads
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                job[0].cancel()
        for _ in range(threads):
            self._jobs.put(_STOP)
