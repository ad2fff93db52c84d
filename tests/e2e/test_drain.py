"""Graceful drain of a real ``hayhooks run`` (1 and 2 workers): SIGTERM with slow requests in flight,
``HAYHOOKS_SHUTDOWN_DELAY``, and the header-read timeout against slow clients."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import FIXTURES, copy_pipelines, wait_until

RUNTIME = FIXTURES / "runtime"


def start_requests(url: str, count: int, seconds: float) -> tuple[list[threading.Thread], list[object]]:
    results: list[object] = []

    def call() -> None:
        try:
            r = httpx.post(f"{url}/sleepy_sync/run", json={"seconds": seconds, "text": "done"}, timeout=60)
            results.append((r.status_code, r.json()))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(count)]
    for t in threads:
        t.start()
    return threads, results


def wait_in_flight(url: str, expected: int) -> None:
    """Until the instance holds ``expected`` runs: ``hayhooks_runs_in_flight`` sums every live
    worker, whichever answers (polling ``/status`` per worker could miss one worker for the whole
    few seconds the runs last, the kernel picking the same worker for every new connection)."""
    from observability_support import value

    def reached() -> bool:
        scrape = httpx.get(f"{url}/metrics", timeout=5, headers={"connection": "close"}).text
        return value(scrape, "hayhooks_runs_in_flight", pipeline="sleepy_sync") == expected

    wait_until(reached, timeout=60, interval=0.05)


def refused_or_not_accepted(url: str) -> bool:
    """True when a new request gets no answer: connection refused, reset or never served."""
    try:
        httpx.get(f"{url}/health", timeout=2, headers={"connection": "close"})
    except httpx.TransportError:
        return True
    return False


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_lets_in_flight_requests_finish_then_exits_0(hayhooks_server, tmp_path: Path, workers: str):
    pipelines = copy_pipelines(tmp_path / "pipelines", "sleepy_sync", source=RUNTIME)
    server = hayhooks_server(pipelines, "--workers", workers)
    threads, results = start_requests(server.url, 5, 4)
    wait_in_flight(server.url, 5)  # all 5 are running before the signal
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGTERM)  # like docker / kubernetes: to the main process
    time.sleep(1.0 if workers == "2" else 0.5)  # the supervisor polls its signals every 0.5 s
    assert refused_or_not_accepted(server.url)
    for t in threads:
        t.join(60)
    assert results == [(200, {"result": "done"})] * 5, server.log()
    assert server.proc.wait(30) == 0, server.log()


def test_shutdown_delay_keeps_serving_with_ready_at_503(hayhooks_server, tmp_path: Path):
    pipelines = copy_pipelines(tmp_path / "pipelines", "sleepy_sync", source=RUNTIME)
    server = hayhooks_server(pipelines, env={"HAYHOOKS_SHUTDOWN_DELAY": "3"})
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGTERM)
    wait_until(lambda: httpx.get(f"{server.url}/ready", timeout=5).status_code == 503, timeout=10)
    assert httpx.get(f"{server.url}/ready").json() == {"status": "draining"}
    # Still accepting new connections and serving runs during the delay.
    r = httpx.post(f"{server.url}/sleepy_sync/run", json={"text": "late"}, headers={"connection": "close"})
    assert r.json() == {"result": "late"}
    assert server.proc.wait(30) == 0, server.log()
    assert refused_or_not_accepted(server.url)


def test_a_slow_client_is_disconnected_after_the_header_read_timeout(hayhooks_server, tmp_path: Path):
    server = hayhooks_server(tmp_path / "pipelines", env={"HAYHOOKS_HEADER_READ_TIMEOUT": "1"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"GET /hea")  # half a request line, then nothing
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server, not by our 20 s socket timeout
        assert time.monotonic() - started < 15
    # A second connection that sends nothing at all is closed too.
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        assert sock.recv(1024) == b""
    # Complete requests are unaffected, keep-alive included.
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/health").status_code == 200
        time.sleep(1.5)  # longer than the header timeout, shorter than uvicorn's keep-alive (5 s)
        assert client.get("/health").status_code == 200


def test_streams_in_flight_at_sigterm_run_to_their_end(hayhooks_server, tmp_path: Path):
    pipelines = copy_pipelines(tmp_path / "pipelines", "slow_sse", "slow_stream", source=RUNTIME)
    server = hayhooks_server(pipelines)
    received: dict[str, str] = {}
    started = {"slow_sse": threading.Event(), "slow_stream": threading.Event()}

    def consume(path: str, body: dict) -> None:
        parts: list[str] = []
        try:
            with httpx.stream("POST", f"{server.url}/{path}/run", json=body, timeout=30) as r:
                for text in r.iter_text():
                    parts.append(text)
                    started[path].set()
            received[path] = "".join(parts)
        except Exception as exc:
            received[path] = repr(exc)

    threads = [
        threading.Thread(target=consume, args=("slow_sse", {"count": 12, "delay": 0.25})),
        threading.Thread(target=consume, args=("slow_stream", {"count": 12, "delay": 0.25})),
    ]
    for t in threads:
        t.start()
    for event in started.values():  # both streams are under way before the signal
        assert event.wait(30)
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGTERM)
    for t in threads:
        t.join(30)
    assert received["slow_stream"] == "".join(f"{i};" for i in range(12)), received
    assert received["slow_sse"].count("data:") == 12 and "error" not in received["slow_sse"], received
    assert server.proc.wait(30) == 0, server.log()
