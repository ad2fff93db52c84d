"""``hayhooks top``: a live view of a running server, from its ``/metrics`` and ``/status``.

Per pipeline: requests per second, p50 / p99 latency, errors, rejections and runs in flight; per
worker: the generation it serves and whether it is in sync. Rates and percentiles cover the last
refresh interval (the first screen, and ``--once``, sample twice ``--interval`` apart).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Annotated, Any, Optional

import typer

from hayhooks.cli.common import TokenOption, UrlOption, make_client
from hayhooks.cli.output import console, handle_errors

_REQUESTS = "hayhooks_requests_total"
_BUCKETS = "hayhooks_request_duration_seconds_bucket"
_IN_FLIGHT = "hayhooks_runs_in_flight"
_WORKER_GENERATION = "hayhooks_worker_generation"
_WORKER_IN_SYNC = "hayhooks_worker_in_sync"
_STORE_GENERATION = "hayhooks_store_generation"


@dataclass
class Sample:
    at: float
    requests: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    errors: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    rejected: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    in_flight: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # pipeline -> upper bound -> cumulative count
    buckets: dict[str, dict[float, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    # worker -> its generation and sync state, and the directory's generation, as /metrics has them
    workers: dict[str, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    store_generation: Optional[int] = None


def parse(text: str, at: float) -> Sample:
    from prometheus_client.parser import text_string_to_metric_families

    sample = Sample(at)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == _WORKER_GENERATION:
                sample.workers[s.labels["worker"]]["generation"] = int(s.value)
            elif s.name == _WORKER_IN_SYNC:
                sample.workers[s.labels["worker"]]["in_sync"] = s.value >= 1
            elif s.name == _STORE_GENERATION:
                sample.store_generation = int(s.value)
            pipeline = s.labels.get("pipeline")
            if pipeline is None:
                continue
            if s.name == _REQUESTS:
                code = int(s.labels.get("code", "0") or 0)
                sample.requests[pipeline] += s.value
                if code >= 500:
                    sample.errors[pipeline] += s.value
                if code == 503:
                    sample.rejected[pipeline] += s.value
            elif s.name == _BUCKETS:
                sample.buckets[pipeline][float(s.labels["le"])] += s.value
            elif s.name == _IN_FLIGHT:
                sample.in_flight[pipeline] += s.value
    return sample


def quantile(q: float, buckets: dict[float, float]) -> Optional[float]:
    """Prometheus-style histogram_quantile over cumulative buckets (linear within a bucket)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, count
    return lower


def snapshot(before: Sample, after: Sample, status: dict[str, Any]) -> dict[str, Any]:
    """``status`` is the server's ``GET /status``. The standalone MCP server's (``hayhooks mcp run``)
    is Hayhooks 2.x's bare ``{"status": "ok"}``: its worker table then comes from ``/metrics``."""
    if "workers" not in status:
        status = {
            **status,
            "generation": after.store_generation,
            "workers": [{"id": wid, "pipelines": None, **w} for wid, w in sorted(after.workers.items())],
        }
    elapsed = max(after.at - before.at, 1e-9)
    pipelines = []
    for name in sorted(set(after.requests) | set(after.in_flight)):
        window = {
            le: c - before.buckets.get(name, {}).get(le, 0.0) for le, c in after.buckets.get(name, {}).items()
        }
        if not any(window.values()):
            window = dict(after.buckets.get(name, {}))  # idle interval: lifetime latency
        p50, p99 = quantile(0.5, window), quantile(0.99, window)
        pipelines.append(
            {
                "name": name,
                "requests": int(after.requests.get(name, 0)),
                "req_per_s": round((after.requests.get(name, 0) - before.requests.get(name, 0)) / elapsed, 2),
                "p50_ms": None if p50 is None else round(p50 * 1000, 1),
                "p99_ms": None if p99 is None else round(p99 * 1000, 1),
                "errors": int(after.errors.get(name, 0)),
                "rejected": int(after.rejected.get(name, 0)),
                "in_flight": int(after.in_flight.get(name, 0)),
            }
        )
    workers = [
        {
            "id": w.get("id"),
            "generation": w.get("generation"),
            "in_sync": w.get("in_sync"),
            "pipelines": w.get("pipelines"),
            "live": True,  # /status lists live workers only
        }
        for w in status.get("workers", [])
    ]
    return {
        "time": after.at,
        "interval_s": round(elapsed, 3),
        "generation": status.get("generation"),
        "ready": status.get("ready"),
        "pipelines": pipelines,
        "workers": workers,
    }


def render(url: str, snap: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table

    def ms(value: Optional[float]) -> str:
        return "-" if value is None else f"{value:.1f}"

    pipes = Table(title=f"Hayhooks at {url}  (every {snap['interval_s']:.1f}s)", expand=True)
    for column in ("pipeline", "req/s", "p50 ms", "p99 ms", "requests", "errors", "503", "in flight"):
        pipes.add_column(column, justify="left" if column == "pipeline" else "right")
    for p in snap["pipelines"]:
        pipes.add_row(
            p["name"],
            f"{p['req_per_s']:.1f}",
            ms(p["p50_ms"]),
            ms(p["p99_ms"]),
            str(p["requests"]),
            f"[red]{p['errors']}[/]" if p["errors"] else "0",
            f"[yellow]{p['rejected']}[/]" if p["rejected"] else "0",
            str(p["in_flight"]),
        )
    workers = Table(title=f"Workers (generation {snap['generation']})", expand=True)
    for column in ("worker", "generation", "in sync", "pipelines"):
        workers.add_column(column)
    for w in snap["workers"]:
        workers.add_row(
            str(w["id"]),
            str(w["generation"]),
            "[green]yes[/]" if w["in_sync"] else "[red]no[/]",
            "-" if w["pipelines"] is None else str(w["pipelines"]),
        )
    return Group(pipes, workers)


def top_command(
    url: UrlOption = None,
    token: TokenOption = None,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between refreshes.")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one snapshot as JSON (implies --once).")
    ] = False,
) -> None:
    """Live view of a running server: per pipeline req/s, p50/p99, errors, in flight; per worker generation."""
    with handle_errors(), make_client(url, token) as client:
        before = parse(client.metrics(), time.monotonic())
        if once or as_json:
            time.sleep(interval)
            after = parse(client.metrics(), time.monotonic())
            snap = snapshot(before, after, client.status())
            if as_json:
                print(json.dumps(snap))
            else:
                console.print(render(client.base_url, snap))
            return
        from rich.live import Live

        with Live(console=console, refresh_per_second=4, screen=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    after = parse(client.metrics(), time.monotonic())
                    live.update(render(client.base_url, snapshot(before, after, client.status())))
                    before = after
            except KeyboardInterrupt:
                return
