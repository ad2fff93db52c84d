"""Instructions per request, counted by valgrind's callgrind: metrics and the recent-runs record on
(the default) vs off, on a real ``hayhooks run`` server answering real HTTP requests.

    python -m bench.bench_instructions                     # echo and echo_async, 16 connections
    python -m bench.bench_instructions --requests 500 --reps 1   # smoke (~3 min)

Why a second measure beside ``bench.run --only metrics`` (requests per second): on this 2-core VM
two processes started with the *same* configuration differ by 10-16% in CPU time per request, more
than the effect asked about (issue 11: at most 5%). Instruction counts do not depend on where a
process landed: one server counted twice differs by well under 1%. They do not see cache or branch
effects, so they complement the throughput bench, they do not replace it.

Each repetition starts a fresh server per configuration under ``valgrind --tool=callgrind
--instr-atstart=no`` (``bench/stretched.py``: the background timers run as often per request as
natively), warms it up uninstrumented, then switches instrumentation on (``callgrind_control -i
on``), sends ``--requests`` requests from ``--connections`` keep-alive connections, and dumps the
count (``callgrind_control -d``): one path per server. Needs ``apt-get install -y valgrind``; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import httpx

from bench.run import PYTHON, Server, Servers, report_table, wait_ready

# What "off" switches off: metrics (the issue's measure) or metrics and the recent-runs record.
OFF_ENVS = {
    "metrics": {"HAYHOOKS_METRICS_ENABLED": "false"},
    "both": {"HAYHOOKS_METRICS_ENABLED": "false", "HAYHOOKS_RECENT_RUNS": "0"},
}
BODY = {"text": "hello hayhooks"}


def add_off_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """``--off``: what the off side of an on/off bench switches off (a key of ``OFF_ENVS``)."""
    parser.add_argument(
        "--off",
        choices=sorted(OFF_ENVS),
        default=default,
        help=f"what the off side switches off: metrics only, or both (metrics and the recent-runs "
        f"record); default {default}",
    )


def start(servers: Servers, label: str, env: dict[str, str], out: Path, args: argparse.Namespace) -> Server:
    """A 1-worker ``hayhooks run`` under callgrind, instrumentation off until ``measure``."""
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        f"--cache-sim={'yes' if args.cache_sim else 'no'}",
        "--separate-threads=yes",  # the event loop's thread apart from background pollers
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
    ]
    # One hash seed for every server: dict and set layouts (and so their lookups' instructions)
    # then do not differ between the two sides by chance.
    fixed = {"HAYHOOKS_BENCH_STRETCH": str(args.stretch), "PYTHONHASHSEED": str(args.hash_seed)}
    return servers.hayhooks(
        label, extra_env={**env, **fixed}, launcher=[*valgrind, PYTHON, "-m", "bench.stretched"]
    )


async def load(url: str, requests: int, connections: int) -> None:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one_connection(count: int) -> None:
            for _ in range(count):
                r = await client.post(url, json=BODY)
                if r.status_code != 200:
                    raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")

        share, extra = divmod(requests, connections)
        await asyncio.gather(*(one_connection(share + (i < extra)) for i in range(connections)))


def measure(server: Server, out: Path, path: str, args: argparse.Namespace) -> dict[str, float]:
    """Instructions (and with ``--cache-sim`` the estimated cycles) per request of
    ``args.requests`` requests to ``path``, instrumented alone (once per server: see ``main``):
    for all threads, and for the main thread alone (the event loop: the request path and the
    metrics flush). Background threads poll on wall-clock timers, so under valgrind (~100 times
    slower per request) their share per request is inflated, and it varies between runs."""
    url = f"{server.url}/{path}/run"
    asyncio.run(load(url, args.warmup, args.connections))
    subprocess.run(["callgrind_control", "-i", "on", str(server.proc.pid)], check=True, capture_output=True)
    asyncio.run(load(url, args.requests, args.connections))
    subprocess.run(["callgrind_control", "-d", str(server.proc.pid)], check=True, capture_output=True)
    found = {"ir": 0.0, "cest": 0.0, "main_ir": 0.0, "main_cest": 0.0}
    dumps = sorted(out.parent.glob(out.name + ".1-*"))  # one per thread; -01 is the main thread
    if not dumps:
        raise RuntimeError(f"no callgrind dump next to {out}")
    for dump in dumps:
        events: list[str] = []
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:"):
                values = [int(x) for x in line.split()[1:]]
                values += [0] * (len(events) - len(values))  # callgrind leaves out trailing zeros
                counts = dict(zip(events, values, strict=True))
                ir, cest = counts["Ir"] / args.requests, cycle_estimate(counts) / args.requests
                found["ir"] += ir
                found["cest"] += cest
                if dump.name.endswith(".1-01"):
                    found["main_ir"], found["main_cest"] = ir, cest
                break
    return found


def cycle_estimate(counts: dict[str, int]) -> float:
    """callgrind_annotate's rough cycle estimate: an L1 miss costs ~10 instructions' time, a
    last-level miss ~100 (the simulated caches are sized like this machine's)."""
    l1 = sum(counts.get(k, 0) for k in ("I1mr", "D1mr", "D1mw"))
    ll = sum(counts.get(k, 0) for k in ("ILmr", "DLmr", "DLmw"))
    return counts["Ir"] + 10 * l1 + 100 * ll


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_instructions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--paths", default="echo_async,echo", help="pipelines to call (default echo_async,echo)"
    )
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections (default 16)")
    parser.add_argument("--requests", type=int, default=2000, help="requests counted per server and path")
    parser.add_argument("--warmup", type=int, default=400, help="uninstrumented requests first")
    parser.add_argument("--reps", type=int, default=2, help="fresh servers per configuration (default 2)")
    parser.add_argument(
        "--stretch",
        type=float,
        default=100.0,
        help="background timers run this many times slower (default 100: an echo request under "
        "callgrind took ~110 times its native time here; see bench/stretched.py)",
    )
    parser.add_argument(
        "--cache-sim",
        action="store_true",
        help="simulate the caches too and compare estimated cycles (Ir + 10 per L1 miss + 100 per "
        "last-level miss); about twice as slow",
    )
    parser.add_argument("--settle", type=float, default=8.0, help="seconds after readiness (heap freeze)")
    add_off_argument(parser, default="both")
    parser.add_argument("--hash-seed", type=int, default=0, help="PYTHONHASHSEED of every server (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for raw results")
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found: apt-get install -y valgrind")
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        p: {"on": [], "off": []} for p in args.paths.split(",")
    }
    for rep in range(args.reps):
        order = [("on", {}), ("off", OFF_ENVS[args.off])]
        if rep % 2:
            order.reverse()
        for path in results:
            for label, env in order:
                # A fresh server per path too: a second count in the same process came out wrong
                # (a sync echo at a quarter of its first-count value) after callgrind_control
                # switched instrumentation off and on again.
                with Servers() as servers:
                    out = servers.tmp / "callgrind.out"
                    server = start(servers, f"instr-{label}", env, out, args)
                    wait_ready(server, timeout=900)
                    time.sleep(args.settle)  # the heap is frozen 5 s after loading settles
                    found = measure(server, out, path, args)
                results[path][label].append(found)
                print(
                    f"  rep {rep + 1} {label} {path}: {found['ir']:,.0f} instructions/request "
                    f"({found['main_ir']:,.0f} on the main thread)"
                    + (f", ~{found['cest']:,.0f} cycles/request" if args.cache_sim else ""),
                    flush=True,
                )
    key = "cest" if args.cache_sim else "ir"
    what = "estimated cycles" if args.cache_sim else "instructions"
    lines = [
        f"| endpoint | conns | requests | main thread: {what}/request off / on | main thread on/off "
        f"(median; range) | all threads: off / on | all threads on/off |",
        "| --- | ---: | ---: | --- | --- | --- | --- |",
    ]
    rows: list[dict[str, Any]] = []
    for path, res in results.items():
        row: dict[str, Any] = {
            "path": path,
            "off": args.off,
            "connections": args.connections,
            "requests": args.requests,
        }
        for scope, field in (("main", f"main_{key}"), ("all", key)):
            ratios = [on[field] / off[field] for on, off in zip(res["on"], res["off"], strict=True)]
            row[scope] = {
                "off": statistics.median(r[field] for r in res["off"]),
                "on": statistics.median(r[field] for r in res["on"]),
                "ratio_median": statistics.median(ratios),
                "ratios": ratios,
            }
        row["measure"], row["raw"] = what, res
        rows.append(row)
        main, every = row["main"], row["all"]
        lines.append(
            f"| `{path}` | {args.connections} | {args.requests} | {main['off']:,.0f} / {main['on']:,.0f} | "
            f"**{main['ratio_median']:.3f}** ({min(main['ratios']):.3f}–{max(main['ratios']):.3f}) | "
            f"{every['off']:,.0f} / {every['on']:,.0f} | {every['ratio_median']:.3f} "
            f"({min(every['ratios']):.3f}–{max(every['ratios']):.3f}) |"
        )
    report_table(lines, rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
