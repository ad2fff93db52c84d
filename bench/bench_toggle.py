"""Metrics and the recent-runs record on vs off inside ONE server process, switched at runtime.

    python -m bench.bench_toggle                      # echo_async and echo, 16 connections, 10 pairs
    python -m bench.bench_toggle --pairs 3 --duration 2   # smoke

Why: on this 2-core VM two processes started with the same configuration differ by 10-16% in CPU
time per request (where each landed), more than the effect asked about (issue 11: at most 5%).
Here one process serves both sides: ``SIGUSR1`` detaches the app's metrics and recent-runs record
(the request path then skips them exactly as when they are configured off), ``SIGUSR2`` attaches
them again. Runs of ``--duration`` seconds alternate off / on (the order flips every pair); each
reports requests per second (wrk) and the process' CPU time per request (``/proc``).

What it does not see: what only happens at startup with metrics configured (the multiprocess
files, imports). ``bench.run --only metrics`` (fresh pairs of processes) covers that, with the
process-to-process noise.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

from bench.run import (
    HOST,
    PYTHON,
    QUIET_ENV,
    ROOT,
    Server,
    Servers,
    free_port,
    report_table,
    wait_ready,
    with_cpu,
    wrk,
)

BODY = {"text": "hello hayhooks"}


class Synthetic:
    """A known per-request cost, switched like the observer's parts: the calibration of the method.

    Each request, while on, appends ``calls`` perf_counter readings through a method call each (the
    shape of the metrics' request path: small calls and list appends), drained every 4,096. Its
    native cost is timed in the server process at startup and printed, so what the toggle reports
    for it can be set against what it costs.
    """

    def __init__(self, app: Any, calls: int) -> None:
        self.app, self.calls, self.on = app, calls, False
        self.sink: list[float] = []

    def add(self, value: float) -> None:
        self.sink.append(value)

    def work(self) -> None:
        add, now = self.add, time.perf_counter
        for _ in range(self.calls):
            add(now())
        if len(self.sink) > 4096:
            del self.sink[:]

    def cost_us(self) -> float:
        import timeit

        number = 20_000
        return min(timeit.repeat(self.work, number=number, repeat=5)) / number * 1e6

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.on:
            self.work()
        await self.app(scope, receive, send)


def serve(port: int, pipelines_dir: str, parts: tuple[str, ...], synthetic_calls: int = 0) -> None:
    """The server process: ``hayhooks run`` with the two signal handlers installed."""
    import uvicorn

    from hayhooks.observability.runs import observer_of
    from hayhooks.server.app import create_app
    from hayhooks.settings import HayhooksSettings

    settings = HayhooksSettings(pipelines_dir=pipelines_dir, additional_python_path=str(ROOT))
    app = create_app(settings)
    saved: dict[str, Any] = {}
    synthetic = Synthetic(app, synthetic_calls) if "synthetic" in parts else None
    parts = tuple(part for part in parts if part not in ("none", "synthetic"))
    if synthetic is not None:
        print(f"synthetic cost: {synthetic.cost_us():.2f} µs per request natively", flush=True)

    def off(*_: Any) -> None:
        if synthetic is not None:
            synthetic.on = False
        observer = observer_of(app.state.service)
        if observer is not None and not saved:
            for part in parts:
                saved[part] = getattr(observer, part)
                setattr(observer, part, None)

    def on(*_: Any) -> None:
        if synthetic is not None:
            synthetic.on = True
        observer = observer_of(app.state.service)
        if observer is not None and saved:
            for part in parts:
                setattr(observer, part, saved.pop(part))

    signal.signal(signal.SIGUSR1, off)
    signal.signal(signal.SIGUSR2, on)
    served: Any = synthetic if synthetic is not None else app
    uvicorn.run(served, host=HOST, port=port, log_level="warning", access_log=False)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_toggle", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--paths", default="echo_async,echo")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=10, help="off/on pairs per path (default 10)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    parser.add_argument(
        "--parts",
        default="metrics,recent",
        help="what is switched: metrics, recent or both (default); none switches nothing, a control "
        "run that shows the method's own spread and bias (the signals are still sent); synthetic "
        "switches a known per-request cost (--synthetic-calls), the method's calibration",
    )
    parser.add_argument(
        "--synthetic-calls",
        type=int,
        default=20,
        help="calls per request of the synthetic cost (its native µs are printed by the server)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file for raw results")
    parser.add_argument("--serve", nargs=4, metavar=("PORT", "DIR", "PARTS", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], tuple(args.serve[2].split(",")), int(args.serve[3]))
        return 0
    rows: list[dict[str, Any]] = []
    with Servers() as servers:
        port = free_port()
        pdir = servers.pipelines_dir("toggle")
        cmd = [
            PYTHON,
            "-m",
            "bench.bench_toggle",
            "--serve",
            str(port),
            str(pdir),
            args.parts,
            str(args.synthetic_calls),
        ]
        proc, log = servers._spawn("toggle", cmd, dict(QUIET_ENV))
        server = Server("toggle", "hayhooks", 1, port, proc, pdir, log)
        servers.all.append(server)
        wait_ready(server)
        time.sleep(6)  # the heap is frozen 5 s after loading settles
        synthetic_us = _synthetic_cost(log)
        if synthetic_us is not None:
            print(f"  synthetic cost: {synthetic_us:.2f} µs per request natively", flush=True)
        for path in args.paths.split(","):
            url = f"{server.url}/{path}/run"
            wrk(url, BODY, args.connections, 2)  # warm-up
            runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
            for pair in range(args.pairs):
                order = ["off", "on"] if pair % 2 == 0 else ["on", "off"]
                for label in order:
                    os.kill(proc.pid, signal.SIGUSR1 if label == "off" else signal.SIGUSR2)
                    time.sleep(0.2)
                    runs[label].append(
                        with_cpu(server, lambda url=url: wrk(url, BODY, args.connections, args.duration))
                    )
            pairs = list(zip(runs["off"], runs["on"], strict=True))
            rps = [on["rps"] / off["rps"] for off, on in pairs]
            # The pairs where the host stole least (both runs at or below the median steal): the
            # VM's own noise comes mostly from the host taking its CPUs away.
            steal_limit = statistics.median(r["steal"] for r in runs["off"] + runs["on"])
            quiet = [
                on["rps"] / off["rps"] for off, on in pairs if max(off["steal"], on["steal"]) <= steal_limit
            ]
            cpu = [on["cpu_us_per_req"] / off["cpu_us_per_req"] for off, on in pairs]
            row = {
                "parts": args.parts,
                "synthetic_us": synthetic_us,
                "path": path,
                "connections": args.connections,
                "pairs": args.pairs,
                "off_rps": statistics.median(r["rps"] for r in runs["off"]),
                "on_rps": statistics.median(r["rps"] for r in runs["on"]),
                "rps_ratio": statistics.median(rps),
                "rps_ratios": rps,
                "off_cpu_us": statistics.median(r["cpu_us_per_req"] for r in runs["off"]),
                "on_cpu_us": statistics.median(r["cpu_us_per_req"] for r in runs["on"]),
                "cpu_ratio": statistics.median(cpu),
                "cpu_ratios": cpu,
                "errors": sum(r["errors"] for r in runs["off"] + runs["on"]),
                "steal_median": steal_limit,
                "quiet_pairs": len(quiet),
                "quiet_rps_ratio": statistics.median(quiet) if quiet else None,
                "quiet_rps_ratios": quiet,
                "raw": runs,
            }
            rows.append(row)
            print(
                f"  {path}: on/off req/s {row['rps_ratio']:.3f} ({min(rps):.2f}–{max(rps):.2f}), "
                f"CPU µs/request {row['off_cpu_us']:.1f} / {row['on_cpu_us']:.1f} = {row['cpu_ratio']:.3f} "
                f"({min(cpu):.2f}–{max(cpu):.2f}); steal median {steal_limit:.1%}, "
                + (
                    f"{len(quiet)} quieter pairs: req/s {row['quiet_rps_ratio']:.3f}"
                    if quiet
                    else "no quieter pairs"
                ),
                flush=True,
            )
    lines = [
        "| endpoint | conns | pairs | off req/s | on req/s | on/off req/s (median; range) "
        "| CPU µs/request off / on | CPU on/off (median; range) | host steal (median) "
        "| quieter pairs: n, req/s on/off | errors |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | --- | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| `{r['path']}` | {r['connections']} | {r['pairs']} | {r['off_rps']:.0f} | {r['on_rps']:.0f} | "
            f"**{r['rps_ratio']:.3f}** ({min(r['rps_ratios']):.2f}–{max(r['rps_ratios']):.2f}) | "
            f"{r['off_cpu_us']:.1f} / {r['on_cpu_us']:.1f} | "
            f"{r['cpu_ratio']:.3f} ({min(r['cpu_ratios']):.2f}–{max(r['cpu_ratios']):.2f}) | "
            f"{r['steal_median']:.1%} | {r['quiet_pairs']}, "
            + (f"{r['quiet_rps_ratio']:.3f}" if r["quiet_rps_ratio"] is not None else "–")
            + f" | {r['errors']} |"
        )
    report_table(lines, rows, args)
    return 0


def _synthetic_cost(log: Path) -> Optional[float]:
    """The synthetic cost the server timed and logged at startup (None when not switched)."""
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("synthetic cost:"):
            return float(line.split()[2])
    return None


if __name__ == "__main__":
    sys.exit(main())
