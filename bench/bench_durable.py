"""Durable runs: executions per second, and the latency ``run-durable`` adds over ``/run``, for the
echo workload on both stores (SQLite, and Redis when ``redis-server`` is installed).

Starts ``hayhooks run`` (1 worker) over ``bench/pipelines/durable_echo`` as a child process, per
store, and measures over loopback HTTP:

* ``/run`` latency: sequential requests, median and p99;
* durable latency: submit, then poll ``GET .../executions/{id}`` every 2 ms until completed (what a
  client waiting for the result sees), median and p99; the difference is the added latency;
* throughput: ``--executions`` submitted from 8 client threads, time until all completed.

Nothing is asserted. Usage: ``python -m bench.bench_durable [--quick] [--requests 200]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HAYHOOKS = str(Path(sys.executable).with_name("hayhooks"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def redis_server() -> Iterator[Optional[str]]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.3)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


@contextmanager
def hayhooks(store: str, redis_url: Optional[str], concurrency: int) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        pipelines = Path(tmp) / "pipelines"
        shutil.copytree(BENCH / "pipelines" / "durable_echo", pipelines / "durable_echo")
        env = {
            **os.environ,
            "HAYHOOKS_LOG_LEVEL": "warning",
            "HAYHOOKS_ACCESS_LOG": "false",
            "HAYHOOKS_DURABLE_STORE": store,
            "HAYHOOKS_DURABLE_WORKER_CONCURRENCY": str(concurrency),
            "HAYHOOKS_DURABLE_POLL_INTERVAL_SECONDS": "0.05",
        }
        if redis_url:
            env["HAYHOOKS_DURABLE_REDIS_URL"] = redis_url
            env["HAYHOOKS_DURABLE_REDIS_KEY_PREFIX"] = f"bench:{port}"
        proc = subprocess.Popen(
            [
                HAYHOOKS,
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--pipelines-dir",
                str(pipelines),
                "--additional-python-path",
                str(ROOT),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("hayhooks did not start")
                time.sleep(0.1)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


def _wait_done(client: httpx.Client, location: str) -> dict[str, Any]:
    while True:
        body = client.get(location).json()
        if body["status"] in ("completed", "failed", "canceled"):
            return body
        time.sleep(0.002)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(url: str, requests: int, executions: int) -> dict[str, float]:
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(10):  # warm up both paths
            client.post("/durable_echo/run", json={"text": "hi"})
            _wait_done(
                client, client.post("/durable_echo/run-durable", json={"text": "hi"}).headers["location"]
            )
        run_ms, durable_ms = [], []
        for _ in range(requests):
            start = time.perf_counter()
            client.post("/durable_echo/run", json={"text": "hi"}).raise_for_status()
            run_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            submitted = client.post("/durable_echo/run-durable", json={"text": "hi"})
            assert _wait_done(client, submitted.headers["location"])["status"] == "completed"
            durable_ms.append((time.perf_counter() - start) * 1000)

    clients = [httpx.Client(base_url=url, timeout=30) for _ in range(8)]  # one per thread, made up front

    def submit(i: int) -> str:
        return clients[i % 8].post("/durable_echo/run-durable", json={"text": str(i)}).headers["location"]

    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        locations = list(pool.map(submit, range(executions)))
    for location in locations:
        _wait_done(clients[0], location)
    elapsed = time.perf_counter() - start
    for client in clients:
        client.close()
    return {
        "run_p50": statistics.median(run_ms),
        "run_p99": pct(run_ms, 0.99),
        "durable_p50": statistics.median(durable_ms),
        "durable_p99": pct(durable_ms, 0.99),
        "added_p50": statistics.median(durable_ms) - statistics.median(run_ms),
        "executions_per_s": executions / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8, help="HAYHOOKS_DURABLE_WORKER_CONCURRENCY")
    parser.add_argument("--quick", action="store_true", help="20 requests, 50 executions: checks the harness")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.executions = 20, 50
    rows = []
    with redis_server() as redis_url:
        for store in ("sqlite", "redis"):
            if store == "redis" and redis_url is None:
                print("redis: skipped (redis-server not installed: apt-get install redis-server)")
                continue
            with hayhooks(store, redis_url, args.concurrency) as url:
                rows.append((store, measure(url, args.requests, args.executions)))
    print(f"\nload average: {open('/proc/loadavg').read().split()[:3]}")
    print(
        "| store | /run p50 ms | /run p99 ms | run-durable p50 ms | run-durable p99 ms | added p50 ms | executions/s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for store, r in rows:
        print(
            f"| {store} | {r['run_p50']:.2f} | {r['run_p99']:.2f} | {r['durable_p50']:.2f} | "
            f"{r['durable_p99']:.2f} | {r['added_p50']:.2f} | {r['executions_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
