"""Runtime benchmarks for ``bench.run``: sync I/O-bound throughput (``io``) and a memory soak (``soak``).

* ``io``: ``POST /io_sync/run`` (a sync ``run_api`` that blocks 50 ms, ``bench/workloads.py``) vs the
  baseline's plain ``def`` endpoint (FastAPI's default thread pool: anyio, 40 threads), at
  1/16/64/256 connections, with 1 and 2 workers each. Targets (issue 9): hayhooks ≥ 0.95× the
  baseline at 16 and 64 connections, ≥ 1.5× at 256.
* ``soak``: 100,000 requests (``--soak-requests``) of the sync echo pipeline through one hayhooks
  worker and the baseline, RSS of every worker sampled twice a second; after warm-up (the first
  20% of the run) RSS must stay within 10% (flat: no per-request leak).
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from bench.run import (
    Servers,
    baseline_row,
    fmt_range,
    interleaved,
    memory,
    wait_ready,
    wrk,
)

IO_BODY = {"text": "hello hayhooks"}


def bench_io(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": []}
    for workers in args.io_workers:
        with Servers() as servers:
            base = servers.baseline(f"baseline-io-w{workers}", workers)
            hay = servers.hayhooks(f"hayhooks-io-w{workers}", str(workers))
            for s in (base, hay):
                wait_ready(s)
            for s in (base, hay):  # warm-up: threads started, caches filled
                wrk(f"{s.url}/io_sync/run", IO_BODY, max(args.io_concurrency), args.warmup)
            for conc in args.io_concurrency:
                res = interleaved(
                    [base, hay],
                    args.reps,
                    lambda s, conc=conc: wrk(f"{s.url}/io_sync/run", IO_BODY, conc, args.duration),
                )
                row = baseline_row(res, base.label, hay.label, workers=workers, connections=conc)
                ratios = row["ratios"]
                out["rows"].append(row)
                print(
                    f"  io_sync w={workers} c={conc}: baseline {row['baseline_rps']:.0f} rps, hayhooks "
                    f"{row['hayhooks_rps']:.0f} rps, ratio {row['ratio_median']:.2f} ({fmt_range(ratios)})",
                    flush=True,
                )
    out["table"] = io_table(out["rows"])
    return out


def io_target(connections: int) -> str:
    if connections >= 256:
        return "≥ 1.5"
    if connections >= 16:
        return "≥ 0.95"
    return "–"


def io_table(rows: list[dict]) -> str:
    lines = [
        "| workers | conns | baseline req/s | hayhooks req/s | hayhooks/baseline (median; range) | target "
        "| p50 ms base / hay | p99 ms base / hay | load avg (min–max) | errors |",
        "| ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['workers']} | {r['connections']} | {r['baseline_rps']:.0f} | {r['hayhooks_rps']:.0f} | "
            f"**{r['ratio_median']:.2f}** ({fmt_range(r['ratios'])}) | {io_target(r['connections'])} | "
            f"{r['baseline_p50_ms']:.1f} / {r['hayhooks_p50_ms']:.1f} | "
            f"{r['baseline_p99_ms']:.1f} / {r['hayhooks_p99_ms']:.1f} | "
            f"{min(r['loadavg']):.2f}–{max(r['loadavg']):.2f} | {r['errors']} |"
        )
    return "\n".join(lines)


# -- soak ------------------------------------------------------------------------------------------
class RssSampler:
    """Samples the RSS (MiB) of some processes every ``interval`` seconds in a thread."""

    def __init__(self, pids: list[int], interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (seconds since start, summed RSS MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - t0, sum(memory(pid)["rss_mib"] for pid in self.pids)))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)


def rss_summary(samples: list[tuple[float, float]], warmup_fraction: float = 0.2) -> dict[str, Any]:
    if not samples:
        return {"samples": 0}
    end = samples[-1][0]
    after = [rss for t, rss in samples if t >= end * warmup_fraction] or [samples[-1][1]]
    first, low, high = after[0], min(after), max(after)
    spread = (high - low) / low if low else float("nan")
    return {
        "samples": len(samples),
        "start_mib": samples[0][1],
        "after_warmup_mib": first,
        "min_mib": low,
        "max_mib": high,
        "end_mib": samples[-1][1],
        "spread": spread,
        "flat": spread <= 0.10,
        "series": samples,
    }


SOAK_STEP_SECONDS = 5  # wrk runs for its whole -d even after its request cap: soak in short steps
SOAK_BUDGET_SECONDS = 1800


def soak_requests(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """``args.soak_requests`` requests in consecutive short wrk runs (the last one capped)."""
    total = errors = 0
    started = time.monotonic()
    while total < args.soak_requests and time.monotonic() - started < SOAK_BUDGET_SECONDS:
        res = wrk(
            f"{url}/{args.soak_path}/run",
            IO_BODY,
            args.soak_connections,
            SOAK_STEP_SECONDS,
            max_requests=args.soak_requests - total,
        )
        total += res["requests"]
        errors += res["errors"]
    seconds = time.monotonic() - started
    return {"requests": total, "errors": errors, "duration_us": seconds * 1e6, "rps": total / seconds}


def bench_soak(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": [], "requests": args.soak_requests}
    with Servers() as servers:
        base = servers.baseline("baseline-soak")
        hay = servers.hayhooks("hayhooks-soak")
        for s in (base, hay):
            wait_ready(s)
        for s in (hay, base):
            with RssSampler(s.worker_pids) as sampler:
                res = soak_requests(s.url, args)
            summary = rss_summary(sampler.samples)
            row = {"label": s.label, "wrk": res, **summary}
            out["rows"].append(row)
            print(
                f"  soak {s.label}: {res['requests']} requests in {res['duration_us'] / 1e6:.0f}s, RSS "
                f"{summary.get('after_warmup_mib', 0):.1f} → {summary.get('end_mib', 0):.1f} MiB "
                f"(spread after warm-up {summary.get('spread', 0) * 100:.1f}%)",
                flush=True,
            )
    lines = [
        f"| server | requests (`{args.soak_path}`, {args.soak_connections} conns) | errors | req/s "
        "| RSS start MiB | RSS after warm-up | min–max after warm-up | RSS end | spread | flat (≤ 10%) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in out["rows"]:
        w = r["wrk"]
        lines.append(
            f"| {r['label']} | {w['requests']} | {w['errors']} | {w['rps']:.0f} | {r['start_mib']:.1f} | "
            f"{r['after_warmup_mib']:.1f} | {r['min_mib']:.1f}–{r['max_mib']:.1f} | {r['end_mib']:.1f} | "
            f"{r['spread'] * 100:.1f}% | {'yes' if r['flat'] else '**no**'} |"
        )
    out["table"] = "\n".join(lines)
    return out
