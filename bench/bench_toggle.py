"""Metrics and the recent-runs record on vs off inside ONE server process, switched at runtime.

    python -m bench.bench_toggle                      # echo_async and echo, 16 connections, 10 pairs
    python -m bench.bench_toggle --pairs 3 --duration 2   # smoke
    python -m bench.bench_toggle --parts metrics --window 0.5 --seconds 300 --pin   # interleaved

Why: on this 2-core VM two processes started with the same configuration differ by 10-16% in CPU
time per request (where each landed), more than the effect asked about (issue 11: at most 5%).
Here one process serves both sides: ``SIGUSR1`` detaches the app's metrics and recent-runs record
(the request path then skips them exactly as when they are configured off), ``SIGUSR2`` attaches
them again. Runs of ``--duration`` seconds alternate off / on (the order flips every pair); each
reports requests per second (wrk) and the process' CPU time per request (``/proc``).

The interleaved mode (``--window``, see ``Windows``) is the finer one: a single long wrk run, the
server switching itself every fraction of a second, so both sides see nearly the same host.

What it does not see: what only happens at startup with metrics configured (the multiprocess
files, imports). ``bench.run --only metrics`` (fresh pairs of processes) covers that, with the
process-to-process noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from bench.run import (
    HOST,
    PYTHON,
    QUIET_ENV,
    ROOT,
    Server,
    Servers,
    cpu_ticks,
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


class Windows:
    """The interleaved mode (``--window``): the server switches itself, every ``length`` seconds,
    while one long wrk run loads it, and records each window: its state, seconds, requests begun,
    the process' CPU seconds and the host's steal.

    Why: the host's noise (steal, the other guest) drifts over seconds; windows of a fraction of a
    second, in pairs of random order (off-on or on-off), see nearly the same host, so their ratio
    keeps the effect and loses most of the drift. The queued metrics are flushed before an on
    window closes, so no counting work of an on window is done in the next off one.
    """

    def __init__(
        self, app: Any, length: float, switch: Callable[[bool], None], flush: Callable[[], None]
    ) -> None:
        self.app, self.length, self.switch, self.flush = app, length, switch, flush
        self.requests = 0
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.handle: Optional[asyncio.TimerHandle] = None
        self.records: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
        elif self.loop is None:
            self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def _snapshot(self) -> tuple[float, int, float, int, int]:
        ticks, stolen = cpu_ticks()
        return time.perf_counter(), self.requests, time.process_time(), ticks, stolen

    @staticmethod
    def _state(index: int) -> bool:
        """On or off in window ``index``: pairs of windows, each off-on or on-off at random, drawn
        from the pair's number (a fixed alternation would put work that recurs every four windows
        always on one side)."""
        pair, second = divmod(index, 2)
        return bool(second) != (random.Random(pair).random() < 0.5)

    def begin(self, dump: Path) -> None:
        assert self.loop is not None
        self.records, self.dump, self.index = [], dump, 0
        self.switch(self._state(0))
        self.start, self.last = self.loop.time(), self._snapshot()
        self.handle = self.loop.call_at(self.start + self.length, self._flip)

    def _flip(self) -> None:
        assert self.loop is not None
        was_on = self._state(self.index)
        if was_on:
            self.flush()
        now = self._snapshot()
        seconds, requests, cpu, ticks, stolen = (b - a for a, b in zip(self.last, now, strict=True))
        self.records.append(
            {
                "on": was_on,
                "seconds": seconds,
                "requests": requests,
                "cpu": cpu,
                "steal": stolen / max(1, ticks),
            }
        )
        self.index += 1
        self.switch(self._state(self.index))
        self.last = now
        self.handle = self.loop.call_at(self.start + (self.index + 1) * self.length, self._flip)

    def end(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        windows = self.records[: len(self.records) // 2 * 2]  # whole pairs only
        partial = self.dump.with_suffix(".part")
        partial.write_text(json.dumps(windows))
        partial.replace(self.dump)


def serve(
    port: int,
    pipelines_dir: str,
    parts: tuple[str, ...],
    synthetic_calls: int = 0,
    window: float = 0.0,
    cpus: Optional[str] = None,
) -> None:
    """The server process: ``hayhooks run`` with the two signal handlers installed."""
    import uvicorn

    from hayhooks.observability.runs import observer_of
    from hayhooks.server.app import create_app
    from hayhooks.settings import HayhooksSettings

    if cpus:
        os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})  # threads started later inherit it
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

    served: Any = synthetic if synthetic is not None else app
    if window > 0:

        def flush() -> None:
            observer = observer_of(app.state.service)
            if observer is not None and observer.metrics is not None:
                observer.metrics.flush()

        windows = served = Windows(served, window, lambda state: on() if state else off(), flush)

        def begin(*_: Any) -> None:
            assert windows.loop is not None
            windows.loop.call_soon_threadsafe(windows.begin, windows_file(Path(pipelines_dir)))

        def end(*_: Any) -> None:
            assert windows.loop is not None
            windows.loop.call_soon_threadsafe(windows.end)

        signal.signal(signal.SIGUSR2, begin)
        signal.signal(signal.SIGUSR1, end)
    else:
        signal.signal(signal.SIGUSR1, off)
        signal.signal(signal.SIGUSR2, on)
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
    parser.add_argument(
        "--window",
        type=float,
        default=0.0,
        help="interleaved mode: the server switches itself every WINDOW seconds during one long wrk "
        "run of --seconds per path (see Windows); 0 (default) = separate wrk runs per side",
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="recorded seconds per path (--window)")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the server to CPU 0 and wrk to CPU 1 (no migrations, no sharing a core)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file for raw results")
    parser.add_argument("--serve", nargs=4, metavar=("PORT", "DIR", "PARTS", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    server_cpus, wrk_cpus = ("0", "1") if args.pin else (None, None)
    if args.serve:
        serve(
            int(args.serve[0]),
            args.serve[1],
            tuple(args.serve[2].split(",")),
            int(args.serve[3]),
            args.window,
            server_cpus,
        )
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
            "--window",
            str(args.window),
            *(["--pin"] if args.pin else []),
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
            wrk(url, BODY, args.connections, 2, cpus=wrk_cpus)  # warm-up
            if args.window > 0:
                rows.append(_windows_row(server, pdir, url, path, synthetic_us, args, wrk_cpus))
                continue
            runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
            for pair in range(args.pairs):
                order = ["off", "on"] if pair % 2 == 0 else ["on", "off"]
                for label in order:
                    os.kill(proc.pid, signal.SIGUSR1 if label == "off" else signal.SIGUSR2)
                    time.sleep(0.2)
                    runs[label].append(
                        with_cpu(
                            server,
                            lambda url=url: wrk(url, BODY, args.connections, args.duration, cpus=wrk_cpus),
                        )
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
    if args.window > 0:
        report_table(_windows_table(rows), rows, args)
        return 0
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


def _windows_row(
    server: Server,
    pdir: Path,
    url: str,
    path: str,
    synthetic_us: Optional[float],
    args: Any,
    wrk_cpus: Optional[str],
) -> dict[str, Any]:
    """One long wrk run while the server switches itself every ``args.window`` seconds; the
    windows' records, summed per side, with a bootstrap interval over the pairs."""
    dump = windows_file(pdir)
    dump.unlink(missing_ok=True)
    load: dict[str, Any] = {}
    seconds = args.seconds + 4
    loader = threading.Thread(
        target=lambda: load.update(
            wrk(url, BODY, args.connections, seconds, max_requests=10**9, cpus=wrk_cpus)
        )
    )
    loader.start()
    time.sleep(1.5)
    os.kill(server.proc.pid, signal.SIGUSR2)  # begin
    time.sleep(args.seconds)
    os.kill(server.proc.pid, signal.SIGUSR1)  # end: the server writes its windows
    loader.join()
    deadline = time.monotonic() + 10
    while not dump.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not dump.exists():
        raise RuntimeError(f"the server wrote no windows to {dump} (see its log: {server.log_path})")
    windows: list[dict[str, Any]] = json.loads(dump.read_text())
    pairs = [
        (a, b) if not a["on"] else (b, a) for a, b in zip(windows[0::2], windows[1::2], strict=True)
    ]  # (off, on)
    rps = [(on["requests"] / on["seconds"]) / (off["requests"] / off["seconds"]) for off, on in pairs]

    def sums(chosen: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, dict[str, float]]:
        """Each side's requests, seconds and CPU seconds, summed over the chosen pairs."""
        keys = ("requests", "seconds", "cpu")
        return {
            label: {key: sum(pair[side][key] for pair in chosen) for key in keys}
            for side, label in enumerate(("off", "on"))
        }

    def ratios(sides: dict[str, dict[str, float]]) -> tuple[float, float]:
        """(req/s on/off, CPU per request on/off)."""
        off, on = sides["off"], sides["on"]
        return (
            (on["requests"] / on["seconds"]) / (off["requests"] / off["seconds"]),
            (on["cpu"] / on["requests"]) / (off["cpu"] / off["requests"]),
        )

    rng = random.Random(0)
    samples = [ratios(sums(rng.choices(pairs, k=len(pairs)))) for _ in range(2000)]
    rps_ci = _interval([sample[0] for sample in samples])
    cpu_ci = _interval([sample[1] for sample in samples])
    sides = sums(pairs)
    rps_ratio, cpu_ratio = ratios(sides)
    quartiles = statistics.quantiles(rps, n=4)
    row = {
        "parts": args.parts,
        "synthetic_us": synthetic_us,
        "path": path,
        "connections": args.connections,
        "window": args.window,
        "pin": args.pin,
        "pairs": len(pairs),
        "off_rps": sides["off"]["requests"] / sides["off"]["seconds"],
        "on_rps": sides["on"]["requests"] / sides["on"]["seconds"],
        "rps_ratio": rps_ratio,
        "rps_ci": rps_ci,
        "rps_pair_median": statistics.median(rps),
        "rps_pair_quartiles": [quartiles[0], quartiles[2]],
        "off_cpu_us": sides["off"]["cpu"] / sides["off"]["requests"] * 1e6,
        "on_cpu_us": sides["on"]["cpu"] / sides["on"]["requests"] * 1e6,
        "cpu_ratio": cpu_ratio,
        "cpu_ci": cpu_ci,
        "busy": (sides["off"]["cpu"] + sides["on"]["cpu"])
        / (sides["off"]["seconds"] + sides["on"]["seconds"]),
        "steal_median": statistics.median(w["steal"] for w in windows),
        "errors": load.get("errors"),
        "windows": windows,
    }
    print(
        f"  {path}: {len(pairs)} pairs of {args.window} s windows: on/off req/s {rps_ratio:.3f} "
        f"(95% {rps_ci[0]:.3f}–{rps_ci[1]:.3f}; pair median {row['rps_pair_median']:.3f}), CPU/request "
        f"{cpu_ratio:.3f} ({cpu_ci[0]:.3f}–{cpu_ci[1]:.3f}); steal median {row['steal_median']:.1%}",
        flush=True,
    )
    return row


def windows_file(pipelines_dir: Path) -> Path:
    """Where the server writes its windows (``Windows.end``) and the bench reads them."""
    return pipelines_dir.parent / "windows.json"


def _interval(values: list[float]) -> tuple[float, float]:
    """The central 95% of bootstrap ``values``."""
    ordered = sorted(values)
    return ordered[int(0.025 * len(ordered))], ordered[int(0.975 * len(ordered)) - 1]


def _windows_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| endpoint | conns | window, pairs, pinned | off req/s | on req/s | on/off req/s (95% CI) "
        "| pairs' on/off (median; quartiles) | CPU µs/request off / on | CPU on/off (95% CI) "
        "| server busy | host steal (median) | errors |",
        "| --- | ---: | --- | ---: | ---: | --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| `{r['path']}` | {r['connections']} | {r['window']} s, {r['pairs']}, {'yes' if r['pin'] else 'no'} | "
            f"{r['off_rps']:.0f} | {r['on_rps']:.0f} | "
            f"**{r['rps_ratio']:.3f}** ({r['rps_ci'][0]:.3f}–{r['rps_ci'][1]:.3f}) | "
            f"{r['rps_pair_median']:.3f} ({r['rps_pair_quartiles'][0]:.2f}–{r['rps_pair_quartiles'][1]:.2f}) | "
            f"{r['off_cpu_us']:.1f} / {r['on_cpu_us']:.1f} | "
            f"{r['cpu_ratio']:.3f} ({r['cpu_ci'][0]:.3f}–{r['cpu_ci'][1]:.3f}) | "
            f"{r['busy']:.0%} | {r['steal_median']:.1%} | {r['errors']} |"
        )
    return lines


def _synthetic_cost(log: Path) -> Optional[float]:
    """The synthetic cost the server timed and logged at startup (None when not switched)."""
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("synthetic cost:"):
            return float(line.split()[2])
    return None


if __name__ == "__main__":
    sys.exit(main())
