"""Pipelines store benchmark (issue 12 point 3): deploy call time, directory store vs Redis store.

    python -m bench.bench_store                 # 10 deploys per setup
    python -m bench.bench_store --deploys 3     # a smoke run

Two ``hayhooks run`` instances (1 worker each) per setup: sharing one pipelines directory (the
directory store), or with separate directories and one ``redis-server`` (no persistence, loopback,
started and stopped here). For each ``POST /deploy-files`` through the first instance: how long the
call took, and when both instances' workers first answered the new pipeline (fresh connections),
with the count of non-200 answers seen after the call returned (must be 0). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Optional

import httpx

from bench.run import (
    Servers,
    free_port,
    loadavg,
    observe,
    probe_wrapper,
    timed_deploy,
    wait_ready_empty,
)


def start_redis(servers: Servers) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=servers.tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=1)
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


def bench_store(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"setups": []}
    with Servers() as servers:
        redis_proc, url = start_redis(servers)
        try:
            shared = servers.tmp / "shared"
            shared.mkdir()
            setups = [
                (
                    "directory store, 2 instances sharing a directory",
                    [
                        servers.hayhooks("dir-a", "1", pipelines_dir=shared),
                        servers.hayhooks("dir-b", "1", pipelines_dir=shared),
                    ],
                ),
            ]
            env = {"HAYHOOKS_STORE_URL": url}
            for label in ("redis-a", "redis-b"):
                (servers.tmp / label).mkdir()
            setups.append(
                (
                    "Redis store, 2 instances with separate directories",
                    [
                        servers.hayhooks(
                            "redis-a", "1", pipelines_dir=servers.tmp / "redis-a", extra_env=env
                        ),
                        servers.hayhooks(
                            "redis-b", "1", pipelines_dir=servers.tmp / "redis-b", extra_env=env
                        ),
                    ],
                )
            )
            clients = [
                httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) for _ in range(4)
            ]
            for label, group in setups:
                for server in group:
                    wait_ready_empty(server, total_workers=2)
                rows = []
                for i in range(args.deploys):
                    name = f"probe_{i}"
                    load = loadavg()
                    r, t0, returned = timed_deploy(group[0].url, name, probe_wrapper(str(i)))
                    seen = observe(clients, [s.url for s in group], name, 2, t0)
                    rows.append({"deploy_s": returned, "loadavg": load, **seen})
                calls = [row["deploy_s"] for row in rows]
                summary = {
                    "setup": label,
                    "deploy_s": calls,
                    "all_serving_s": [row["all_serving_s"] for row in rows],
                    "non_200_after_return": sum(row["non_200_after"] for row in rows),
                    "loadavg": [row["loadavg"] for row in rows],
                }
                out["setups"].append(summary)
                print(
                    f"  [{label}] deploy call median {statistics.median(calls) * 1e3:.0f} ms "
                    f"(min {min(calls) * 1e3:.0f}, max {max(calls) * 1e3:.0f}), "
                    f"non-200 after return {summary['non_200_after_return']}",
                    flush=True,
                )
            for client in clients:
                client.close()
        finally:
            redis_proc.terminate()
            redis_proc.wait(10)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deploys", type=int, default=10)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    out = bench_store(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
