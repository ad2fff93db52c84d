"""Cluster benchmarks (issue 12): instances behind nginx, and Ray Serve replicas.

    python -m bench.bench_cluster                      # both parts
    python -m bench.bench_cluster --only nginx         # or ray
    python -m bench.bench_cluster --quick              # 1-second runs: checks the harness only

* ``nginx``: requests/s of the echo pipeline through nginx (``deploy/nginx/hayhooks.conf``, run
  on loopback with every path in a temp dir) in front of 1 and 2 ``hayhooks run`` instances
  sharing one pipelines directory, a fresh client connection per request (``Connection: close``,
  so nginx and the kernel spread them); and deploy propagation through the balancer: how long
  ``POST /deploy-files`` takes and when every worker of every instance first answered.
* ``ray``: CPU-bound throughput (the ~30 ms ``cpu`` pipeline) through Ray Serve with 1 and 2
  replicas on a local two-node Ray cluster (1 CPU per node, ``tests/e2e/_ray_cluster.py``, with
  the loopback-only Ray environment) against ``hayhooks run --workers 2``.

Load from ``wrk`` as in ``bench.run``; every run is bounded in time and requests; only 127.0.0.1
is contacted; every process started here is stopped by its id at the end. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import httpx

from bench.run import (
    HAYHOOKS,
    HOST,
    QUIET_ENV,
    ROOT,
    Servers,
    free_port,
    fresh_request,
    loadavg,
    machine,
    observe,
    probe_wrapper,
    timed_deploy,
    wait_ready,
    wrk,
)

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NGINX_CONF = ROOT / "deploy" / "nginx" / "hayhooks.conf"
RAY_HELPER = ROOT / "tests" / "e2e" / "_ray_cluster.py"


# -- nginx ----------------------------------------------------------------------------------------
class Nginx:
    """The shipped site config on loopback, upstreams replaced, every path under a temp dir."""

    def __init__(self, root: Path, upstreams: list[int]) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            raise SystemExit("nginx not found: apt-get install -y nginx-light")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        site = NGINX_CONF.read_text()
        servers = "".join(f"    server {HOST}:{p} max_fails=1 fail_timeout=2s;\n" for p in upstreams)
        site = re.sub(r"(upstream hayhooks \{\n)(?:.*\n)*?(\})", rf"\g<1>{servers}\g<2>", site)
        site = re.sub(r"listen \d+;", f"listen {HOST}:{self.port};", site)
        temps = "".join(f"  {s}_temp_path {root}/{s};\n" for s in ("proxy", "fastcgi", "uwsgi", "scgi"))
        conf = root / "nginx.conf"
        conf.write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n"
            + "events { worker_connections 1024; }\n"
            + f"http {{\n  access_log off;\n  client_body_temp_path {root}/body;\n{temps}{site}}}\n"
        )
        self.proc = subprocess.Popen(
            [nginx, "-p", str(root), "-e", str(root / "error.log"), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"http://{HOST}:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("nginx did not start: " + (root / "error.log").read_text()[-2000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def bench_nginx(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"setups": []}
    env = {"HAYHOOKS_ADMIN_TOKEN": TOKEN}
    for count in (1, 2):
        with Servers() as servers:
            shared = servers.pipelines_dir(f"nginx-{count}")
            group = [
                servers.hayhooks(f"i{count}-{i}", args.workers, pipelines_dir=shared, extra_env=env)
                for i in range(count)
            ]
            total = count * int(args.workers)
            for s in group:
                s.workers = total  # every instance reports every worker of the shared directory
                wait_ready(s)
            balancer = Nginx(servers.tmp / "nginx", [s.port for s in group])
            try:
                runs = [
                    wrk(
                        f"{balancer.url}/echo/run",
                        {"text": "hi"},
                        args.connections,
                        args.duration,
                        close=True,
                    )
                    for _ in range(args.reps)
                ]
                clients = [
                    httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))
                    for _ in range(4)
                ]
                deploys = []
                for i in range(args.deploys):
                    load = loadavg()
                    r, t0, returned = timed_deploy(balancer.url, f"probe_{i}", probe_wrapper(str(i)), AUTH)
                    seen = observe(clients, [balancer.url], f"probe_{i}", total, t0)
                    deploys.append({"deploy_s": returned, "loadavg_before": load, **seen})
                for c in clients:
                    c.close()
            finally:
                balancer.stop()
        setup = {
            "setup": f"nginx → {count} instance(s) × --workers {args.workers}",
            "rps": [r["rps"] for r in runs],
            "p99_ms": [r["p99_us"] / 1e3 for r in runs],
            "errors": sum(
                r["err_connect"] + r["err_read"] + r["err_status"] + r["err_timeout"] for r in runs
            ),
            "deploy_s": [d["deploy_s"] for d in deploys],
            "all_serving_s": [d["all_serving_s"] for d in deploys],
            "non_200_after_return": sum(d["non_200_after"] for d in deploys),
            "raw": {"wrk": runs, "deploys": deploys},
        }
        out["setups"].append(setup)
        print(
            f"  {setup['setup']}: {statistics.median(setup['rps']):.0f} req/s (p99 "
            f"{statistics.median(setup['p99_ms']):.1f} ms, errors {setup['errors']}), deploy call median "
            f"{statistics.median(setup['deploy_s']) * 1e3:.0f} ms, all workers serving median "
            f"{_med_ms(setup['all_serving_s'])}, non-200 after return {setup['non_200_after_return']}",
            flush=True,
        )
    lines = [
        f"| setup ({args.connections} connections, Connection: close) | req/s | p99 | deploy call | all serving | non-200 after |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in out["setups"]:
        lines.append(
            f"| {s['setup']} | {statistics.median(s['rps']):.0f} | {statistics.median(s['p99_ms']):.1f} ms | "
            f"{statistics.median(s['deploy_s']) * 1e3:.0f} ms | {_med_ms(s['all_serving_s'])} | "
            f"{s['non_200_after_return']} |"
        )
    out["table"] = "\n".join(lines)
    return out


def _med_ms(values: list[Optional[float]]) -> str:
    ok = [v for v in values if v is not None]
    return f"{statistics.median(ok) * 1e3:.0f} ms" if ok else "n/a"


# -- ray ------------------------------------------------------------------------------------------
def ray_env(root: Path) -> dict[str, str]:
    """The loopback-only Ray environment (the same as tests/e2e/test_ray.py)."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "ray_bootstrap_config.yaml").write_text("")
    (root / "tmp").mkdir(exist_ok=True)
    return {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_USAGE_STATS_REPORT_URL": f"http://{HOST}:{free_port()}",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "HOME": str(home),
        "RAY_TMPDIR": str(root / "tmp"),
        "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0",
    }


def _stop(proc: subprocess.Popen, timeout: float = 90) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def warm_up(url: str, count: int = 8) -> None:
    """A few requests first, so the first measured second is not the pipeline's first call."""
    for _ in range(count):
        fresh_request("POST", f"{url}/cpu/run", json={})


def bench_ray(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"setups": []}
    body = {}
    with Servers() as servers:
        local = servers.hayhooks("workers-2", "2")
        wait_ready(local)
        warm_up(local.url)
        runs = [
            wrk(f"{local.url}/cpu/run", body, args.cpu_connections, args.duration, close=True)
            for _ in range(args.reps)
        ]
        out["setups"].append(
            {"setup": "hayhooks run --workers 2", "rps": [r["rps"] for r in runs], "raw": runs}
        )
        local.stop()

        root = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        env = ray_env(root)
        cluster = subprocess.Popen(
            [sys.executable, str(RAY_HELPER)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        try:
            address = cluster.stdout.readline().strip()
            if not address:
                raise RuntimeError("the Ray cluster did not start")
            for replicas in (1, 2):
                port = free_port()
                serve = subprocess.Popen(
                    [
                        HAYHOOKS,
                        "ray",
                        "run",
                        "--address",
                        address,
                        "--replicas",
                        str(replicas),
                        "--max-replicas-per-node",
                        "1",
                        "--proxy-location",
                        "HeadOnly",
                        "--host",
                        HOST,
                        "--port",
                        str(port),
                        "--pipelines-dir",
                        str(servers.pipelines_dir(f"ray-{replicas}")),
                        "--additional-python-path",
                        str(ROOT),
                    ],  # fmt: skip
                    env={**env, **QUIET_ENV},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                try:
                    url = f"http://{HOST}:{port}"
                    deadline = time.monotonic() + 300
                    while True:
                        if serve.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError("hayhooks ray run did not start")
                        try:
                            status = fresh_request("GET", f"{url}/status").json()
                            if len(status["workers"]) == replicas and "cpu" in status["pipelines"]:
                                break
                        except (httpx.HTTPError, ValueError, KeyError):
                            pass
                        time.sleep(0.5)
                    warm_up(url)
                    runs = [
                        wrk(f"{url}/cpu/run", body, args.cpu_connections, args.duration, close=True)
                        for _ in range(args.reps)
                    ]
                    out["setups"].append(
                        {
                            "setup": f"hayhooks ray run --replicas {replicas}",
                            "rps": [r["rps"] for r in runs],
                            "raw": runs,
                        }
                    )
                finally:
                    _stop(serve)
        finally:
            if cluster.poll() is None:
                cluster.stdin.close()
                try:
                    cluster.wait(90)
                except subprocess.TimeoutExpired:
                    os.killpg(cluster.pid, signal.SIGKILL)
            shutil.rmtree(root, ignore_errors=True)
    lines = [
        f"| setup (cpu pipeline, {args.cpu_connections} connections) | req/s (median of {args.reps}) |",
        "| --- | --- |",
    ]
    for s in out["setups"]:
        lines.append(f"| {s['setup']} | {statistics.median(s['rps']):.1f} |")
        print(f"  {s['setup']}: {statistics.median(s['rps']):.1f} req/s", flush=True)
    out["table"] = "\n".join(lines)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="nginx,ray", help="comma list: nginx, ray")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cpu-connections", type=int, default=8)
    parser.add_argument("--workers", default="1", help="workers per instance behind nginx")
    parser.add_argument("--deploys", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1-second runs, 1 rep, 2 deploys")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.reps, args.deploys = 1, 1, 2
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    results: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if "nginx" in only:
        print("nginx:", flush=True)
        results["nginx"] = bench_nginx(args)
    if "ray" in only:
        print("ray:", flush=True)
        results["ray"] = bench_ray(args)
    for key in ("nginx", "ray"):
        if key in results:
            print(f"\n{results[key]['table']}\n")
    out = args.out or ROOT / "bench" / "results" / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"raw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
