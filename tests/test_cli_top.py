"""`hayhooks top`'s arithmetic: rates and percentiles from two scrapes, as Prometheus computes them."""

from __future__ import annotations

from rich.console import Console

from hayhooks.cli.top import parse, quantile, render, snapshot

SCRAPE = """# TYPE hayhooks_requests_total counter
hayhooks_requests_total{{code="200",pipeline="echo",surface="run"}} {ok}
hayhooks_requests_total{{code="503",pipeline="echo",surface="run"}} {busy}
hayhooks_requests_total{{code="500",pipeline="echo",surface="openai"}} 1.0
# TYPE hayhooks_request_duration_seconds histogram
hayhooks_request_duration_seconds_bucket{{le="0.01",pipeline="echo",surface="run"}} {fast}
hayhooks_request_duration_seconds_bucket{{le="0.1",pipeline="echo",surface="run"}} {total}
hayhooks_request_duration_seconds_bucket{{le="+Inf",pipeline="echo",surface="run"}} {total}
hayhooks_request_duration_seconds_count{{pipeline="echo",surface="run"}} {total}
hayhooks_request_duration_seconds_sum{{pipeline="echo",surface="run"}} 1.0
# TYPE hayhooks_runs_in_flight gauge
hayhooks_runs_in_flight{{pipeline="echo",surface="run"}} 2.0
"""


def test_quantile_interpolates_within_buckets():
    buckets = {0.01: 50.0, 0.1: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == 0.01
    assert abs(quantile(0.75, buckets) - 0.055) < 1e-9
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
    assert quantile(0.99, {0.1: 0.0, float("inf"): 5.0}) == 0.1  # beyond the last finite bound


def test_snapshot_rates_errors_and_workers():
    before = parse(SCRAPE.format(ok=10, busy=0, fast=5, total=10), at=100.0)
    after = parse(SCRAPE.format(ok=30, busy=2, fast=15, total=30), at=102.0)
    status = {
        "generation": 4,
        "ready": True,
        "workers": [{"id": "h-1", "generation": 4, "in_sync": True, "pipelines": 1}],
    }
    snap = snapshot(before, after, status)
    (echo,) = snap["pipelines"]
    assert echo["requests"] == 33 and echo["req_per_s"] == 11.0
    assert echo["errors"] == 3 and echo["rejected"] == 2 and echo["in_flight"] == 2
    assert echo["p50_ms"] == 10.0 and echo["p99_ms"] is not None and echo["p99_ms"] <= 100.0
    assert snap["workers"] == [{"id": "h-1", "generation": 4, "in_sync": True, "pipelines": 1, "live": True}]
    console = Console(record=True, width=120)
    console.print(render("http://127.0.0.1:1416", snap))
    text = console.export_text()
    assert "echo" in text and "h-1" in text and "11.0" in text


CLUSTER = """# TYPE hayhooks_worker_generation gauge
hayhooks_worker_generation{worker="h-7"} 3.0
hayhooks_worker_generation{worker="h-8"} 2.0
# TYPE hayhooks_worker_in_sync gauge
hayhooks_worker_in_sync{worker="h-7"} 1.0
hayhooks_worker_in_sync{worker="h-8"} 0.0
# TYPE hayhooks_store_generation gauge
hayhooks_store_generation 3.0
"""


def test_snapshot_of_the_standalone_mcp_server_takes_workers_from_metrics():
    """`hayhooks mcp run` answers /status with 2.x's bare {"status": "ok"}: the worker table and the
    generation come from the worker gauges of /metrics instead."""
    before = parse(SCRAPE.format(ok=1, busy=0, fast=1, total=1) + CLUSTER, at=10.0)
    after = parse(SCRAPE.format(ok=2, busy=0, fast=2, total=2) + CLUSTER, at=11.0)
    snap = snapshot(before, after, {"status": "ok"})
    assert snap["generation"] == 3
    assert snap["workers"] == [
        {"id": "h-7", "generation": 3, "in_sync": True, "pipelines": None, "live": True},
        {"id": "h-8", "generation": 2, "in_sync": False, "pipelines": None, "live": True},
    ]
    assert snap["pipelines"][0]["req_per_s"] == 1.0
    console = Console(record=True, width=120)
    console.print(render("http://127.0.0.1:1417", snap))
    text = console.export_text()
    assert "h-8" in text and "None" not in text
    # The main server's /status keeps priority over the gauges.
    listed = snapshot(before, after, {"generation": 3, "workers": [{"id": "w", "generation": 3}]})
    assert [w["id"] for w in listed["workers"]] == ["w"]
