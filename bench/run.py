"""Benchmarks: hayhooks vs a hand-written FastAPI app over the same workloads (``bench/workloads.py``).

    python -m bench.run                       # overhead, scaling, deploy, memory
    python -m bench.run --only overhead       # or scaling / deploy / memory / gc / io / streaming / soak
    python -m bench.run --quick               # short runs, to check the harness works

Every server is a child process of this one (its own process group, stopped by id at the end),
bound to 127.0.0.1, with logging at warning level and no access log. Load comes from ``wrk``
(a C load generator; ``apt-get install -y wrk``) so the client is not the bottleneck; every wrk
run is bounded in time (``-d``) and in request count (a Lua counter stops the thread).
Baseline and hayhooks runs are interleaved (the order alternates per repetition) so both see the
same background noise; tables report medians and hayhooks/baseline ratios. Nothing is asserted.
Raw results are written as JSON next to this file (``bench/results/``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
# HAYHOOKS_BENCH_BIN: another installation's `hayhooks` (e.g. an older commit's), same harness.
HAYHOOKS = os.environ.get("HAYHOOKS_BENCH_BIN") or str(Path(PYTHON).with_name("hayhooks"))
UVICORN = str(Path(PYTHON).with_name("uvicorn"))
HOST = "127.0.0.1"
QUIET_ENV = {"HAYHOOKS_LOG_LEVEL": "warning", "HAYHOOKS_ACCESS_LOG": "false"}
MAX_REQUESTS_PER_RUN = 500_000  # hard cap per wrk thread, on top of the -d time bound
STARTUP_TIMEOUT = 120.0


# -- machine state -------------------------------------------------------------------------------
def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cores": len(os.sched_getaffinity(0)),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "?",
        ),
        "python": sys.version.split()[0],
        "wrk": shutil.which("wrk"),
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# -- servers -------------------------------------------------------------------------------------
@dataclass
class Server:
    label: str
    kind: str  # "hayhooks" | "baseline"
    workers: int
    port: int
    proc: subprocess.Popen
    pipelines_dir: Optional[Path] = None
    log_path: Optional[Path] = None
    worker_pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this script created for it
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


class Servers:
    """Starts servers as children of this process and always stops them."""

    def __init__(self) -> None:
        self.all: list[Server] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="hayhooks-bench-"))

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: Any) -> None:
        for server in self.all:
            server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def pipelines_dir(self, name: str) -> Path:
        """A private copy of bench/pipelines (hayhooks writes bookkeeping into its pipelines dir)."""
        target = self.tmp / name
        if not target.exists():
            shutil.copytree(
                BENCH / "pipelines", target, ignore=shutil.ignore_patterns("__pycache__", ".hayhooks")
            )
        return target

    def _spawn(self, label: str, cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        log_path = self.tmp / f"{label}.log"
        with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return proc, log_path

    def hayhooks(
        self,
        label: str,
        workers: str = "1",
        pipelines_dir: Optional[Path] = None,
        port: Optional[int] = None,
        extra_env: Optional[dict[str, str]] = None,
        launcher: Optional[list[str]] = None,
    ) -> Server:
        """``hayhooks run``; ``launcher`` replaces the ``hayhooks`` executable (e.g. valgrind and a
        Python module)."""
        port = port or free_port()
        pdir = pipelines_dir or self.pipelines_dir(label)
        cmd = [
            *(launcher or [HAYHOOKS]),
            "run",
            "--host",
            HOST,
            "--port",
            str(port),
            "--pipelines-dir",
            str(pdir),
            "--additional-python-path",
            str(ROOT),
            "--workers",
            workers,
        ]
        proc, log = self._spawn(label, cmd, {**QUIET_ENV, **(extra_env or {})})
        count = len(os.sched_getaffinity(0)) if workers == "auto" else int(workers)
        server = Server(label, "hayhooks", count, port, proc, pdir, log)
        self.all.append(server)
        return server

    def baseline(self, label: str, workers: int = 1) -> Server:
        port = free_port()
        cmd = [
            UVICORN,
            "bench.baseline_app:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        proc, log = self._spawn(label, cmd, {})
        server = Server(label, "baseline", workers, port, proc, None, log)
        self.all.append(server)
        return server


def timed_deploy(
    base_url: str, name: str, files: dict[str, str], headers: Optional[dict[str, str]] = None
) -> tuple[httpx.Response, float, float]:
    """``POST /deploy-files`` on a new connection: (response, t0, seconds the call took); a
    failed deploy stops the benchmark.

    The client is built before t0: its TLS setup (~60 ms loading the CA bundle, even for
    http://) is the client's time, not the server's."""
    with httpx.Client(timeout=30) as client:
        t0 = time.monotonic()
        r = client.post(
            f"{base_url}/deploy-files",
            json={"name": name, "files": files},
            headers={"connection": "close", **(headers or {})},
        )
        returned = time.monotonic() - t0
    if r.status_code != 200:
        raise RuntimeError(f"deploy failed: {r.status_code} {r.text}")
    return r, t0, returned


def fresh_request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request on its own connection (so the kernel may hand it to any worker)."""
    with httpx.Client(timeout=10) as client:
        return client.request(method, url, headers={"connection": "close"}, **kwargs)


def wait_ready(server: Server, timeout: float = STARTUP_TIMEOUT) -> None:
    """Until every worker answers (hayhooks: all workers report all pipelines loaded)."""
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.label} exited: {server.log_path.read_text()[-2000:]}")
        try:
            if server.kind == "hayhooks":
                status = fresh_request("GET", f"{server.url}/status").json()
                workers = status.get("workers", [])
                expected = len(status.get("pipelines", []))
                if (
                    status.get("ready")
                    and expected
                    and len(workers) >= server.workers
                    and all(w["pipelines"] == expected and w["in_sync"] for w in workers)
                ):
                    break
            else:
                seen.add(fresh_request("GET", f"{server.url}/health").json()["pid"])
                if len(seen) >= server.workers:
                    break
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    else:
        raise RuntimeError(f"{server.label} not ready after {timeout}s")
    server.worker_pids = worker_pids(server.proc.pid, server.workers)


def worker_pids(root: int, expected: int) -> list[int]:
    """The processes that serve requests: the root itself with one worker, else its spawned children."""
    if expected == 1:
        return [root]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = [pid for pid in children(root) if b"spawn_main" in _cmdline(pid)]
        if len(kids) >= expected:
            return kids
        time.sleep(0.1)
    return children(root)


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return sorted(set(out))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def memory(pid: int) -> dict[str, float]:
    """RSS and PSS in MiB from /proc (PSS shares pages fairly between processes)."""
    out = {"rss_mib": float("nan"), "pss_mib": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                out["rss_mib"] = int(line.split()[1]) / 1024
            elif line.startswith("Pss:"):
                out["pss_mib"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


# -- wrk -----------------------------------------------------------------------------------------
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{extra_headers}
wrk.body = {body}
local max_requests = {max_requests}
local count = 0
function response(status, headers, body)
  count = count + 1
  if count >= max_requests then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,' ..
    '"max_us":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk(
    url: str,
    body: dict[str, Any],
    connections: int,
    duration: float,
    close: bool = False,
    max_requests: int = MAX_REQUESTS_PER_RUN,
    cpus: Optional[str] = None,
) -> dict[str, Any]:
    """One wrk run (one thread) of ``duration`` seconds; ``cpus`` pins it (``taskset -c``)."""
    script = Path(tempfile.mkstemp(suffix=".lua", prefix="bench-")[1])
    script.write_text(
        LUA.format(
            body=json.dumps(json.dumps(body)),
            extra_headers='wrk.headers["Connection"] = "close"' if close else "",
            max_requests=max_requests,
        )
    )
    cmd = [
        *(["taskset", "-c", cpus] if cpus else []),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    load = loadavg()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    finally:
        script.unlink(missing_ok=True)
    line = next((x for x in out.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary:\n{out}")
    res = json.loads(line[len("WRK_JSON ") :])
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["errors"] = sum(v for k, v in res.items() if k.startswith("err_"))
    res["loadavg_before"] = load
    res["connections"] = connections
    return res


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and all its descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, frontier = 0.0, [pid]
    while frontier:
        current = frontier.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        frontier.extend(children(current))
    return total


def cpu_ticks() -> tuple[int, int]:
    """(all, stolen) CPU ticks of the machine so far (/proc/stat): time the hypervisor gave to
    someone else while this VM wanted to run is "steal"."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def with_cpu(server: Server, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``'s result plus the server's CPU microseconds per request during it (a measure that
    other load on the machine barely moves, unlike requests per second) and the share of the
    machine's CPU time the hypervisor stole meanwhile (``steal``: the host's own noise)."""
    before, (ticks, stolen) = tree_cpu_seconds(server.proc.pid), cpu_ticks()
    res = run()
    res["cpu_us_per_req"] = (tree_cpu_seconds(server.proc.pid) - before) / max(1, res["requests"]) * 1e6
    ticks_after, stolen_after = cpu_ticks()
    res["steal"] = (stolen_after - stolen) / max(1, ticks_after - ticks)
    return res


def interleaved(
    servers: list[Server], reps: int, run: Callable[[Server], dict[str, Any]]
) -> dict[str, list[dict]]:
    """Run ``run`` on every server ``reps`` times, alternating the order each repetition."""
    results: dict[str, list[dict]] = {s.label: [] for s in servers}
    for rep in range(reps):
        order = servers if rep % 2 == 0 else list(reversed(servers))
        for server in order:
            results[server.label].append(run(server))
    return results


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def pair_ratios(h: list[dict], b: list[dict], key: str = "rps") -> list[float]:
    return [x[key] / y[key] for x, y in zip(h, b, strict=True)]


def fmt_range(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}"


# -- a. per-request overhead ---------------------------------------------------------------------
def baseline_row(res: dict[str, Any], base: str, hay: str, **keys: Any) -> dict[str, Any]:
    """One table row from interleaved wrk runs: medians of each side and the hayhooks/baseline ratio
    of every back-to-back pair (median and all of them), with the load before each run."""
    b, h = res[base], res[hay]
    ratios = pair_ratios(h, b)
    return {
        **keys,
        "baseline_rps": med(b, "rps"),
        "hayhooks_rps": med(h, "rps"),
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "baseline_p50_ms": med(b, "p50_us") / 1e3,
        "hayhooks_p50_ms": med(h, "p50_us") / 1e3,
        "baseline_p99_ms": med(b, "p99_us") / 1e3,
        "hayhooks_p99_ms": med(h, "p99_us") / 1e3,
        "errors": sum(r["errors"] for r in b + h),
        "loadavg": [r["loadavg_before"] for r in b + h],
        "raw": res,
    }


def bench_overhead(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": []}
    with Servers() as servers:
        base = servers.baseline("baseline-w1")
        hay = servers.hayhooks("hayhooks-w1")
        for s in (base, hay):
            wait_ready(s)
        for path in args.paths:
            body = {"text": "hello hayhooks"}
            for s in (base, hay):  # warm-up: imports, pydantic caches, thread pools
                wrk(f"{s.url}/{path}/run", body, 16, args.warmup)
            for conc in args.concurrency:
                res = interleaved(
                    [base, hay],
                    args.reps,
                    lambda s, path=path, body=body, conc=conc: wrk(
                        f"{s.url}/{path}/run", body, conc, args.duration
                    ),
                )
                row = baseline_row(res, base.label, hay.label, path=path, connections=conc)
                ratios = row["ratios"]
                out["rows"].append(row)
                print(
                    f"  overhead {path} c={conc}: baseline {row['baseline_rps']:.0f} rps, hayhooks "
                    f"{row['hayhooks_rps']:.0f} rps, ratio {row['ratio_median']:.2f} ({fmt_range(ratios)})",
                    flush=True,
                )
    out["table"] = overhead_table(out["rows"])
    return out


def overhead_table(rows: list[dict]) -> str:
    lines = [
        "| endpoint | conns | baseline req/s | hayhooks req/s | hayhooks/baseline (median; range of pairs) "
        "| p50 ms base / hay | p99 ms base / hay | load avg (min–max) | errors |",
        "| --- | ---: | ---: | ---: | --- | --- | --- | --- | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| `{r['path']}` | {r['connections']} | {r['baseline_rps']:.0f} | {r['hayhooks_rps']:.0f} | "
            f"**{r['ratio_median']:.2f}** ({fmt_range(r['ratios'])}) | "
            f"{r['baseline_p50_ms']:.2f} / {r['hayhooks_p50_ms']:.2f} | "
            f"{r['baseline_p99_ms']:.2f} / {r['hayhooks_p99_ms']:.2f} | "
            f"{min(r['loadavg']):.2f}–{max(r['loadavg']):.2f} | {r['errors']} |"
        )
    return "\n".join(lines)


# -- b. CPU-bound scaling ------------------------------------------------------------------------
def bench_scaling(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": []}
    with Servers() as servers:
        b1 = servers.baseline("baseline-w1", 1)
        b2 = servers.baseline("baseline-w2", 2)
        h1 = servers.hayhooks("hayhooks-w1", "1")
        h2 = servers.hayhooks("hayhooks-wauto", "auto")
        group = [b1, h1, b2, h2]
        for s in group:
            wait_ready(s)
        body: dict[str, Any] = {}
        for s in group:
            wrk(f"{s.url}/cpu/run", body, 4, args.warmup, close=True)
        results: dict[int, dict[str, list[dict]]] = {}
        for conc in (1, args.cpu_connections):
            # Connection: close, so each request is accepted by whichever worker is free; with
            # keep-alive a connection stays on the worker that accepted it and the split is luck.
            results[conc] = interleaved(
                group,
                args.scaling_reps,
                lambda s, conc=conc: wrk(f"{s.url}/cpu/run", body, conc, args.duration, close=True),
            )
            for s in group:
                rows = results[conc][s.label]
                print(
                    f"  scaling c={conc} {s.label}: {med(rows, 'rps'):.1f} rps, "
                    f"p50 {med(rows, 'p50_us') / 1e3:.1f} ms",
                    flush=True,
                )
        sat = results[args.cpu_connections]
        one = results[1]
        rb = statistics.median(pair_ratios(sat[b2.label], sat[b1.label]))
        rh = statistics.median(pair_ratios(sat[h2.label], sat[h1.label]))
        out.update(
            {
                "workers_auto": h2.workers,
                "connections": args.cpu_connections,
                "baseline_scaling": rb,
                "hayhooks_scaling": rh,
                "scaling_ratio": rh / rb,
                "baseline_scaling_pairs": pair_ratios(sat[b2.label], sat[b1.label]),
                "hayhooks_scaling_pairs": pair_ratios(sat[h2.label], sat[h1.label]),
                "raw": {str(k): v for k, v in results.items()},
            }
        )
        for workers, b, h in ((1, b1, h1), (h2.workers, b2, h2)):
            out["rows"].append(
                {
                    "workers": workers,
                    "baseline_rps": med(sat[b.label], "rps"),
                    "hayhooks_rps": med(sat[h.label], "rps"),
                    "throughput_ratio": statistics.median(pair_ratios(sat[h.label], sat[b.label])),
                    "baseline_p50_c1_ms": med(one[b.label], "p50_us") / 1e3,
                    "hayhooks_p50_c1_ms": med(one[h.label], "p50_us") / 1e3,
                    "baseline_p50_sat_ms": med(sat[b.label], "p50_us") / 1e3,
                    "hayhooks_p50_sat_ms": med(sat[h.label], "p50_us") / 1e3,
                    "errors": sum(
                        r["errors"] for r in sat[b.label] + sat[h.label] + one[b.label] + one[h.label]
                    ),
                    "loadavg": [
                        r["loadavg_before"] for r in sat[b.label] + sat[h.label] + one[b.label] + one[h.label]
                    ],
                }
            )
    out["table"] = scaling_table(out)
    print(f"  scaling: baseline x{rb:.2f}, hayhooks x{rh:.2f}, ratio {rh / rb:.2f}", flush=True)
    return out


def scaling_table(out: dict[str, Any]) -> str:
    c = out["connections"]
    lines = [
        f"| workers | baseline req/s (c={c}) | hayhooks req/s (c={c}) | hayhooks/baseline "
        "| p50 ms at c=1 base / hay "
        f"| c=1 overhead ms | p50 ms at c={c} base / hay | load avg (min–max) | errors |",
        "| ---: | ---: | ---: | ---: | --- | ---: | --- | --- | ---: |",
    ]
    for r in out["rows"]:
        lines.append(
            f"| {r['workers']} | {r['baseline_rps']:.1f} | {r['hayhooks_rps']:.1f} | "
            f"{r['throughput_ratio']:.2f} | "
            f"{r['baseline_p50_c1_ms']:.1f} / {r['hayhooks_p50_c1_ms']:.1f} | "
            f"{r['hayhooks_p50_c1_ms'] - r['baseline_p50_c1_ms']:+.1f} | "
            f"{r['baseline_p50_sat_ms']:.1f} / {r['hayhooks_p50_sat_ms']:.1f} | "
            f"{min(r['loadavg']):.2f}–{max(r['loadavg']):.2f} | {r['errors']} |"
        )
    lines += [
        "",
        f"| | scaling 1 → {out['workers_auto']} workers (median of pairs; range) |",
        "| --- | --- |",
        f"| baseline (uvicorn --workers) | x{out['baseline_scaling']:.2f} "
        f"({fmt_range(out['baseline_scaling_pairs'])}) |",
        f"| hayhooks (--workers auto) | x{out['hayhooks_scaling']:.2f} "
        f"({fmt_range(out['hayhooks_scaling_pairs'])}) |",
        f"| **hayhooks scaling / baseline scaling** | **{out['scaling_ratio']:.2f}** |",
    ]
    return "\n".join(lines)


# -- c. deploy propagation -----------------------------------------------------------------------
def probe_wrapper(version: str) -> dict[str, str]:
    return {
        "pipeline_wrapper.py": (
            "import os\n\nfrom hayhooks import BasePipelineWrapper\n\n\n"
            "class PipelineWrapper(BasePipelineWrapper):\n"
            "    skip_mcp = True\n\n"
            "    def setup(self) -> None:\n        pass\n\n"
            "    def run_api(self) -> dict:\n"
            f"        return {{'pid': os.getpid(), 'version': {version!r}}}\n"
        )
    }


def observe(
    clients: list[httpx.Client],
    urls: list[str],
    name: str,
    expect_pids: int,
    t0: float,
    budget: float = 15.0,
    max_requests: int = 3000,
) -> dict[str, Any]:
    """Poll ``POST /{name}/run`` on fresh connections (one thread per client, clients built
    beforehand so their setup is not timed) until every instance (URL) and every worker (pid) has
    answered 200. Returns when each was first seen serving (seconds since t0)."""
    first_seen: dict[str, float] = {}
    non_200 = [0]
    sent = [0]
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + budget

    def done() -> bool:
        pids = [k for k in first_seen if k.startswith("pid:")]
        urls_ok = all(f"url:{u}" in first_seen for u in urls)
        return urls_ok and len(pids) >= expect_pids

    def poll(i: int) -> None:
        client = clients[i]
        k = i
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                if sent[0] >= max_requests:
                    break
                sent[0] += 1
            url = urls[k % len(urls)]
            k += 1
            try:
                r = client.post(f"{url}/{name}/run", json={}, headers={"connection": "close"})
            except httpx.HTTPError:
                continue
            now = time.monotonic() - t0
            with lock:
                if r.status_code == 200:
                    first_seen.setdefault(f"url:{url}", now)
                    first_seen.setdefault(f"pid:{r.json()['result']['pid']}", now)
                    if done():
                        stop.set()
                else:
                    non_200[0] += 1

    pool = [threading.Thread(target=poll, args=(i,)) for i in range(len(clients))]
    for t in pool:
        t.start()
    for t in pool:
        t.join(budget + 15)
    return {
        "all_serving_s": max(first_seen.values()) if done() else None,
        "first_seen": first_seen,
        "non_200_after": non_200[0],
        "requests": sent[0],
    }


def bench_deploy(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"setups": []}
    with Servers() as servers:
        setups = []
        d1 = servers.tmp / "deploy-w1"
        setups.append(("1 instance, 1 worker", [servers.hayhooks("deploy-w1", "1", pipelines_dir=d1)], 1))
        d2 = servers.tmp / "deploy-w2"
        setups.append(("1 instance, --workers 2", [servers.hayhooks("deploy-w2", "2", pipelines_dir=d2)], 2))
        d4 = servers.tmp / "deploy-w4"
        setups.append(("1 instance, --workers 4", [servers.hayhooks("deploy-w4", "4", pipelines_dir=d4)], 4))
        d3 = servers.tmp / "deploy-shared"
        pair = [
            servers.hayhooks("deploy-a", "1", pipelines_dir=d3),
            servers.hayhooks("deploy-b", "1", pipelines_dir=d3),
        ]
        setups.append(("2 instances (1 worker each), shared dir", pair, 2))
        for d in (d1, d2, d4, d3):
            d.mkdir(exist_ok=True)
        for _, group, _ in setups:
            for s in group:
                s.workers = max(s.workers, 1)
        rng = random.Random(1416)
        clients = [
            httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) for _ in range(4)
        ]
        for label, group, pids in setups:
            for s in group:
                wait_ready_empty(s, total_workers=pids)
            urls = [s.url for s in group]
            api, copy = [], []
            for i in range(args.deploys):
                name = f"probe_{i}"
                load = loadavg()
                r, t0, returned = timed_deploy(group[0].url, name, probe_wrapper(str(i)))
                seen = observe(clients, urls, name, pids, t0)
                api.append({"deploy_s": returned, **seen, "loadavg_before": load, "answer": r.json()})
                # Hand edit: files appear in the directory with no API call; workers notice on
                # their next full scan (HAYHOOKS_POLL_INTERVAL, default 1 s).
                hand = f"hand_{i}"
                staging = group[0].pipelines_dir / f".bench-{hand}"
                staging.mkdir()
                for fname, text in probe_wrapper(f"hand{i}").items():
                    (staging / fname).write_text(text)
                # Land at a random point of the poll cycle (right after the deploy above, every
                # worker has just rescanned, which would always show the worst case).
                time.sleep(rng.uniform(0, 1.0))
                t0 = time.monotonic()
                os.replace(staging, group[0].pipelines_dir / hand)
                copy.append(observe(clients, urls, hand, pids, t0))
            summary = {
                "setup": label,
                "workers_total": pids,
                "deploy_s": [x["deploy_s"] for x in api],
                "api_all_serving_s": [x["all_serving_s"] for x in api],
                "api_non_200_after_return": sum(x["non_200_after"] for x in api),
                "hand_all_serving_s": [x["all_serving_s"] for x in copy],
                "workers_reported": [x["answer"]["workers"] for x in api],
                "loadavg": [x["loadavg_before"] for x in api],
                "raw_api": api,
                "raw_hand": copy,
            }
            out["setups"].append(summary)
            print(
                f"  deploy [{label}]: call median {statistics.median(summary['deploy_s']) * 1e3:.0f} ms, "
                f"all serving median {_med_ms(summary['api_all_serving_s'])}, non-200 after return "
                f"{summary['api_non_200_after_return']}, "
                f"hand copy median {_med_ms(summary['hand_all_serving_s'])}",
                flush=True,
            )
        for client in clients:
            client.close()
    out["table"] = deploy_table(out["setups"])
    return out


def wait_ready_empty(server: Server, total_workers: int, timeout: float = STARTUP_TIMEOUT) -> None:
    """An empty pipelines dir: ready when /status lists every worker serving this directory."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.label} exited: {server.log_path.read_text()[-2000:]}")
        try:
            status = fresh_request("GET", f"{server.url}/status").json()
            if status.get("ready") and len(status.get("workers", [])) >= total_workers:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.label} not ready after {timeout}s")


def _med_ms(values: list[Optional[float]]) -> str:
    ok = [v for v in values if v is not None]
    missing = len(values) - len(ok)
    text = f"{statistics.median(ok) * 1e3:.0f} ms" if ok else "n/a"
    return text + (f" ({missing} never seen)" if missing else "")


def _max_ms(values: list[Optional[float]]) -> str:
    ok = [v for v in values if v is not None]
    return f"{max(ok) * 1e3:.0f} ms" if ok else "n/a"


def deploy_table(setups: list[dict]) -> str:
    lines = [
        "| setup | deploys | `POST /deploy-files` median / max | all workers serving (from t0) median / max "
        "| non-200 after the call returned | hand copy into dir → all serving median / max "
        "| load avg (min–max) |",
        "| --- | ---: | --- | --- | ---: | --- | --- |",
    ]
    for s in setups:
        lines.append(
            f"| {s['setup']} | {len(s['deploy_s'])} | {statistics.median(s['deploy_s']) * 1e3:.0f} / "
            f"{max(s['deploy_s']) * 1e3:.0f} ms | "
            f"{_med_ms(s['api_all_serving_s'])} / {_max_ms(s['api_all_serving_s'])} | "
            f"{s['api_non_200_after_return']} | "
            f"{_med_ms(s['hand_all_serving_s'])} / {_max_ms(s['hand_all_serving_s'])} | "
            f"{min(s['loadavg']):.2f}–{max(s['loadavg']):.2f} |"
        )
    return "\n".join(lines)


# -- d. memory -----------------------------------------------------------------------------------
def bench_memory(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": []}
    with Servers() as servers:
        group = [
            servers.baseline("baseline-w1", 1),
            servers.hayhooks("hayhooks-w1", "1"),
            servers.baseline("baseline-w2", 2),
            servers.hayhooks("hayhooks-w2", "2"),
        ]
        for s in group:
            wait_ready(s)
        time.sleep(2)
        idle = {s.label: snapshot(s) for s in group}
        for s in group:  # some traffic on every worker: echo and cpu, fresh connections
            wrk(f"{s.url}/echo/run", {"text": "hello"}, 16, args.warmup, close=True)
            wrk(f"{s.url}/cpu/run", {}, 4, args.warmup, close=True)
        time.sleep(1)
        loaded = {s.label: snapshot(s) for s in group}
        for s in group:
            out["rows"].append(
                {
                    "label": s.label,
                    "kind": s.kind,
                    "workers": s.workers,
                    "idle": idle[s.label],
                    "after_traffic": loaded[s.label],
                }
            )
    out["imports"] = import_costs()
    out["table"] = memory_table(out)
    return out


def snapshot(server: Server) -> dict[str, Any]:
    workers = [memory(pid) for pid in server.worker_pids]
    parent = memory(server.proc.pid) if server.workers > 1 else None
    return {"workers": workers, "supervisor": parent}


def import_costs() -> dict[str, float]:
    """RSS of a bare interpreter after importing X: which part of a worker's memory is whose."""
    probes = {
        "python (nothing)": "pass",
        "fastapi, uvicorn": "import fastapi, uvicorn",
        "haystack": "import haystack",
        "fastapi, uvicorn, haystack": "import fastapi, uvicorn, haystack",
        "fastapi, uvicorn, haystack, mcp.server": "import fastapi, uvicorn, haystack, mcp.server",
        "hayhooks.server.app (module builds an app)": "import hayhooks.server.app",
    }
    out = {}
    for label, stmt in probes.items():
        code = (
            f"{stmt}\nimport re\n"
            "print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
        )
        try:
            with tempfile.TemporaryDirectory() as empty:
                res = subprocess.run(
                    [PYTHON, "-c", code],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    cwd=ROOT,
                    env={**os.environ, **QUIET_ENV, "HAYHOOKS_PIPELINES_DIR": empty},
                )
            out[label] = int(res.stdout.strip().splitlines()[-1]) / 1024
        except (subprocess.SubprocessError, ValueError, IndexError):
            out[label] = float("nan")
    return out


def memory_table(out: dict[str, Any]) -> str:
    lines = [
        "| server | per worker RSS MiB idle → after traffic | per worker PSS MiB after traffic "
        "| supervisor RSS MiB |",
        "| --- | --- | --- | --- |",
    ]
    for r in out["rows"]:
        idle = ", ".join(f"{w['rss_mib']:.0f}" for w in r["idle"]["workers"])
        busy = ", ".join(f"{w['rss_mib']:.0f}" for w in r["after_traffic"]["workers"])
        pss = ", ".join(f"{w['pss_mib']:.0f}" for w in r["after_traffic"]["workers"])
        sup = r["after_traffic"]["supervisor"]
        lines.append(
            f"| {r['label']} | {idle} → {busy} | {pss} | {sup['rss_mib']:.0f} |"
            if sup
            else f"| {r['label']} | {idle} → {busy} | {pss} | (single process) |"
        )
    lines += ["", "| interpreter after import | RSS MiB |", "| --- | ---: |"]
    lines += [f"| `{k}` | {v:.0f} |" for k, v in out["imports"].items()]
    return "\n".join(lines)


# -- e. the garbage collector ---------------------------------------------------------------------
def bench_gc(args: argparse.Namespace) -> dict[str, Any]:
    """hayhooks as shipped (young-generation GC threshold 50,000, heap frozen after loading) vs
    hayhooks with Python's threshold of 700 (``HAYHOOKS_GC_THRESHOLD=0``), vs the baseline; sync
    echo. Server CPU per request and tails show what the collector costs and whether the larger
    threshold makes single collections long enough to show in p99 / max."""
    out: dict[str, Any] = {"rows": [], "full_gc_ms": full_gc_costs()}
    with Servers() as servers:
        group = [
            servers.baseline("baseline-w1"),
            servers.hayhooks("hayhooks-w1"),
            servers.hayhooks("hayhooks-gc700", extra_env={"HAYHOOKS_GC_THRESHOLD": "0"}),
        ]
        for s in group:
            wait_ready(s)
        body = {"text": "hello hayhooks"}
        for s in group:
            wrk(f"{s.url}/echo/run", body, 16, args.warmup)
        for conc in [c for c in args.concurrency if c > 1] or [16]:
            res = interleaved(
                group,
                args.reps,
                lambda s, conc=conc: with_cpu(s, lambda: wrk(f"{s.url}/echo/run", body, conc, args.duration)),
            )
            for s in group:
                rows = res[s.label]
                out["rows"].append(
                    {
                        "label": s.label,
                        "connections": conc,
                        "rps": med(rows, "rps"),
                        "cpu_us_per_req": med(rows, "cpu_us_per_req"),
                        "p50_ms": med(rows, "p50_us") / 1e3,
                        "p99_ms": med(rows, "p99_us") / 1e3,
                        "max_ms": med(rows, "max_us") / 1e3,
                        "errors": sum(r["errors"] for r in rows),
                        "loadavg": [r["loadavg_before"] for r in rows],
                        "raw": rows,
                    }
                )
    lines = [
        "| server | conns | req/s | server CPU µs/request | p50 ms | p99 ms | max ms | load avg (min–max) | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in out["rows"]:
        lines.append(
            f"| {r['label']} | {r['connections']} | {r['rps']:.0f} | {r['cpu_us_per_req']:.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.1f} | "
            f"{r['max_ms']:.0f} | {min(r['loadavg']):.2f}–{max(r['loadavg']):.2f} | {r['errors']} |"
        )
    lines += [
        "",
        "| interpreter after import | tracked objects | full `gc.collect()` ms (median of 5) |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| `{k}` | {v['objects']} | {v['ms']:.1f} |" for k, v in out["full_gc_ms"].items()]
    out["table"] = "\n".join(lines)
    return out


def full_gc_costs() -> dict[str, dict[str, float]]:
    out = {}
    for stmt in ("import fastapi, uvicorn", "import hayhooks.server.app"):
        code = (
            f"{stmt}\nimport gc, json, statistics, time\ngc.collect()\nts = []\n"
            "for _ in range(5):\n"
            "    t = time.perf_counter(); gc.collect(); ts.append((time.perf_counter() - t) * 1e3)\n"
            "print(json.dumps({'objects': len(gc.get_objects()), 'ms': statistics.median(ts)}))"
        )
        try:
            with tempfile.TemporaryDirectory() as empty:
                res = subprocess.run(
                    [PYTHON, "-c", code],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    cwd=ROOT,
                    env={**os.environ, **QUIET_ENV, "HAYHOOKS_PIPELINES_DIR": empty},
                )
            out[stmt] = json.loads(res.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, ValueError, IndexError):
            out[stmt] = {"objects": -1, "ms": float("nan")}
    return out


# -- streaming (another engineer's script) -------------------------------------------------------
def bench_streaming(args: argparse.Namespace) -> dict[str, Any]:
    script = BENCH / "bench_streaming.py"
    if not script.exists() or "def main(" not in script.read_text():
        return {"table": "(bench/bench_streaming.py not present)"}
    res = subprocess.run([PYTHON, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    return {"table": res.stdout.strip() + ("\n" + res.stderr[-2000:] if res.returncode else "")}


def bench_io(args: argparse.Namespace) -> dict[str, Any]:
    from bench.bench_runtime import bench_io as run

    return run(args)


def bench_soak(args: argparse.Namespace) -> dict[str, Any]:
    from bench.bench_runtime import bench_soak as run

    return run(args)


# -- f. observability overhead --------------------------------------------------------------------
METRICS_OFF_ENV = {"HAYHOOKS_METRICS_ENABLED": "false", "HAYHOOKS_RECENT_RUNS": "0"}


def bench_metrics(args: argparse.Namespace) -> dict[str, Any]:
    """Echo with metrics and the recent-runs record on (the default) vs both off, 1 worker each.

    Every repetition starts a fresh pair of servers (in alternating order): two processes of the
    *same* configuration differ by up to ~15% in CPU per request on this VM (an A/A check in run
    12), more than the effect measured, so pairs of long-lived servers would mostly measure which
    process got the better placement. Within a repetition, the two alternate for every row.
    """
    samples: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    body = {"text": "hello hayhooks"}
    for rep in range(args.reps):
        with Servers() as servers:
            order = [("off", METRICS_OFF_ENV), ("on", {})]
            if rep % 2:
                order.reverse()
            started = {label: servers.hayhooks(f"metrics-{label}", extra_env=env) for label, env in order}
            for s in started.values():
                wait_ready(s)
            time.sleep(6)  # the heap is frozen 5 s after loading settles (pipelines.heap)
            for path in args.paths:
                for s in started.values():
                    wrk(f"{s.url}/{path}/run", body, 16, args.warmup)
                for conc in args.concurrency:
                    found = interleaved(
                        list(started.values()),
                        1,
                        lambda s, path=path, conc=conc: with_cpu(
                            s, lambda: wrk(f"{s.url}/{path}/run", body, conc, args.duration)
                        ),
                    )
                    row = samples.setdefault((path, conc), {"off": [], "on": []})
                    for label, s in started.items():
                        row[label].extend(found[s.label])
        print(f"  metrics repetition {rep + 1}/{args.reps} done", flush=True)
    out: dict[str, Any] = {"rows": []}
    for (path, conc), res in samples.items():
        a, b = res["off"], res["on"]
        ratios = pair_ratios(b, a)
        cpu_ratios = pair_ratios(b, a, "cpu_us_per_req")
        row = {
            "path": path,
            "connections": conc,
            "off_rps": med(a, "rps"),
            "on_rps": med(b, "rps"),
            "ratio_median": statistics.median(ratios),
            "ratios": ratios,
            "off_cpu_us": med(a, "cpu_us_per_req"),
            "on_cpu_us": med(b, "cpu_us_per_req"),
            "cpu_ratio_median": statistics.median(cpu_ratios),
            "cpu_ratios": cpu_ratios,
            "off_p99_ms": med(a, "p99_us") / 1e3,
            "on_p99_ms": med(b, "p99_us") / 1e3,
            "errors": sum(r["errors"] for r in a + b),
            "loadavg": [r["loadavg_before"] for r in a + b],
            "raw": res,
        }
        out["rows"].append(row)
        print(
            f"  metrics {path} c={conc}: off {row['off_rps']:.0f} rps, on {row['on_rps']:.0f} rps, "
            f"on/off {row['ratio_median']:.3f} ({fmt_range(ratios)}); CPU/request "
            f"{row['off_cpu_us']:.0f} / {row['on_cpu_us']:.0f} us, on/off {row['cpu_ratio_median']:.3f} "
            f"({fmt_range(cpu_ratios)})",
            flush=True,
        )
    lines = [
        "| endpoint | conns | metrics off req/s | metrics on req/s | on/off (median; range of pairs) "
        "| server CPU µs/request off / on | CPU on/off (median; range) "
        "| p99 ms off / on | load avg (min–max) | errors |",
        "| --- | ---: | ---: | ---: | --- | --- | --- | --- | --- | ---: |",
    ]
    for r in out["rows"]:
        lines.append(
            f"| `{r['path']}` | {r['connections']} | {r['off_rps']:.0f} | {r['on_rps']:.0f} | "
            f"**{r['ratio_median']:.3f}** ({fmt_range(r['ratios'])}) | "
            f"{r['off_cpu_us']:.0f} / {r['on_cpu_us']:.0f} | "
            f"{r['cpu_ratio_median']:.3f} ({fmt_range(r['cpu_ratios'])}) | "
            f"{r['off_p99_ms']:.2f} / {r['on_p99_ms']:.2f} | "
            f"{min(r['loadavg']):.2f}–{max(r['loadavg']):.2f} | {r['errors']} |"
        )
    out["table"] = "\n".join(lines)
    return out


BENCHES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "overhead": bench_overhead,
    "scaling": bench_scaling,
    "deploy": bench_deploy,
    "memory": bench_memory,
    "gc": bench_gc,
    "streaming": bench_streaming,
    "io": bench_io,
    "soak": bench_soak,
    "metrics": bench_metrics,
}

EPILOG = """\
benchmarks (--only):
  overhead   echo (sync) and echo_async at --concurrency, 1 worker, vs the FastAPI baseline
  scaling    ~30 ms CPU-bound pipeline, 1 vs N workers (CPU-bound must not regress)
  deploy     deploy propagation to every worker / instance
  memory     RSS / PSS per worker, idle and after traffic
  gc         GC pauses explained (sync echo with and without gc.freeze)
  io         sync run_api blocking 50 ms at --io-concurrency (1,16,64,256) with --io-workers (1,2)
             vs FastAPI's def endpoint (40 threads); targets >= 0.95x at 16/64, >= 1.5x at 256
  streaming  chunk rate and time to first chunk vs a raw FastAPI SSE endpoint running the same
             Haystack pipeline (bench/bench_streaming.py); target >= 0.9x
  soak       --soak-requests (100,000) requests with each worker's RSS sampled; flat within 10%

examples:
  python -m bench.run --only io                      # issue 9 point 1 (~6 min)
  python -m bench.run --only streaming               # streaming chunk rate (~1 min)
  python -m bench.run --only soak                    # 100k requests per server + RSS (~1-2 min)
  python -m bench.run --only io,scaling,soak,streaming --out bench/results/runtime.json
  python -m bench.run --only io,soak --quick         # smoke: checks the harness, not the numbers
"""


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only",
        default="overhead,scaling,deploy,memory,gc,metrics",
        help=f"comma list of: {', '.join(BENCHES)} (default: all but streaming)",
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per wrk run, whole seconds (default 5)"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per server")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each configuration (default 3)")
    parser.add_argument("--concurrency", default="1,16,64", help="connections for the overhead runs")
    parser.add_argument("--paths", default="echo,echo_async", help="echo pipelines for the overhead runs")
    parser.add_argument(
        "--scaling-reps", type=int, default=5, help="repetitions of the CPU scaling runs (noisier)"
    )
    parser.add_argument(
        "--cpu-connections", type=int, default=8, help="connections for the saturated CPU runs"
    )
    parser.add_argument("--deploys", type=int, default=10, help="deploys per propagation setup")
    parser.add_argument("--io-concurrency", default="1,16,64,256", help="connections for the io runs")
    parser.add_argument("--io-workers", default="1,2", help="worker counts for the io runs")
    parser.add_argument("--soak-requests", type=int, default=100_000, help="requests per soak server")
    parser.add_argument("--soak-connections", type=int, default=16, help="connections for the soak")
    parser.add_argument("--soak-path", default="echo", help="pipeline the soak calls (echo or io_sync)")
    parser.add_argument(
        "--quick", action="store_true", help="short runs: checks the harness, not the numbers"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file for raw results")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.paths = [p for p in args.paths.split(",") if p]
    args.io_concurrency = [int(c) for c in args.io_concurrency.split(",")]
    args.io_workers = [int(w) for w in args.io_workers.split(",")]
    if args.quick:
        args.duration, args.warmup, args.reps, args.scaling_reps, args.deploys = 1.0, 1.0, 1, 1, 2
        args.soak_requests = min(args.soak_requests, 3000)
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    if any(b != "streaming" for b in chosen) and not shutil.which("wrk"):
        parser.error("wrk not found: apt-get install -y wrk (see bench/README.md)")

    report: dict[str, Any] = {
        "machine_start": machine(),
        "argv": sys.argv,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    print(f"# machine: {report['machine_start']}", flush=True)
    for name in chosen:
        print(f"## {name}", flush=True)
        started = time.monotonic()
        report[name] = BENCHES[name](args)
        report[name]["seconds"] = time.monotonic() - started
        report[name]["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
        print(report[name]["table"] + "\n", flush=True)
    report["machine_end"] = machine()
    save_results(args.out or BENCH / "results" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.json", report)
    return 0


def report_table(lines: list[str], rows: list[dict[str, Any]], args: Any) -> None:
    """Print a bench's markdown table and save it with its rows, the machine state and the
    arguments to ``args.out`` (the side scripts' common ending)."""
    table = "\n".join(lines)
    print(table)
    save_results(args.out, {"machine": machine(), "args": vars(args), "rows": rows, "table": table})


def save_results(path: Optional[Path], data: dict[str, Any]) -> None:
    """Raw results as JSON (nothing when ``path`` is None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))
    print(f"raw results: {path}")


if __name__ == "__main__":
    sys.exit(main())
