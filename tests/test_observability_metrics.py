"""/metrics on an in-process app. Metric values live per process (one set of files for every app
this test process builds), so each test compares before and after, on pipeline names of its own."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import SAMPLE_PIPELINES
from observability_support import samples, value

ROOT = Path(__file__).resolve().parents[1]


def _copy(pipelines_dir: Path, source: str, name: str) -> None:
    shutil.copytree(SAMPLE_PIPELINES / source, pipelines_dir / name)


def _run(outcome: str, elapsed: float, chunks: int = 0, status_code: int = 200) -> SimpleNamespace:
    """A finished run as the metrics read it (``FinishedRun``)."""
    return SimpleNamespace(outcome=outcome, elapsed=elapsed, chunks=chunks, status_code=status_code)


def _answer(status: int, elapsed: float) -> SimpleNamespace:
    """An answered request as the metrics read it (``AnsweredRequest``)."""
    return SimpleNamespace(status=status, elapsed=elapsed)


def test_prometheus_private_api_we_rely_on(tmp_path):
    """_prometheus_compat switches prometheus_client's value class: pin what it touches."""
    from prometheus_client import values

    assert hasattr(values, "ValueClass") and callable(values.MultiProcessValue)
    assert getattr(values.MultiProcessValue(), "_multiprocess", False) is True
    from prometheus_client import Histogram, multiprocess

    assert callable(multiprocess.mark_process_dead)
    from hayhooks.observability.metrics import RUN_BUCKETS, Metrics

    plain = Histogram("pin_plain", "pin", buckets=RUN_BUCKETS, registry=None)
    metrics = Metrics(tmp_path)
    series = metrics.series("pin_buckets", "run")
    # Counted in three batches: two spread over buckets, one within a single bucket (bound included).
    batches = [[0.005, 0.05, 0.1, 0.5], [2.0, 0.001, 400.0, 0.0051], [0.0011, 0.004, 0.005, 0.003]]
    amounts = [amount for batch in batches for amount in batch]
    for batch in batches:
        for amount in batch:  # the flush picks buckets itself, as observe does
            plain.observe(amount)
            series.run_finished(_run("ok", amount))
        metrics.flush()
    tallied = metrics.run_duration.labels("pin_buckets", "run")
    assert [b.get() for b in tallied._buckets] == [b.get() for b in plain._buckets]
    assert sum(b.get() for b in tallied._buckets) == len(amounts)
    assert tallied._sum.get() == pytest.approx(plain._sum.get())


async def test_requests_runs_errors_and_streams_are_counted(app_client, pipelines_dir):
    _copy(pipelines_dir, "echo", "m_echo")
    _copy(pipelines_dir, "fails_at_run", "m_fails")
    _copy(pipelines_dir, "stream_text", "m_stream")
    client = await app_client(pipelines_dir)
    before = (await client.get("/metrics")).text
    for _ in range(3):
        assert (await client.post("/m_echo/run", json={"name": "x"})).status_code == 200
    assert (await client.post("/m_echo/run", json={})).status_code == 422
    assert (await client.post("/m_fails/run", json={"text": "boom"})).status_code == 500
    assert (await client.post("/m_stream/run", json={})).status_code == 200
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = r.text

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("hayhooks_requests_total", pipeline="m_echo", surface="run", code="200") == 3
    assert delta("hayhooks_requests_total", pipeline="m_echo", code="422") == 1
    assert delta("hayhooks_requests_total", pipeline="m_fails", code="500") == 1
    assert delta("hayhooks_pipeline_runs_total", pipeline="m_echo", outcome="ok") == 3
    assert delta("hayhooks_pipeline_runs_total", pipeline="m_fails", outcome="error") == 1
    assert delta("hayhooks_pipeline_run_duration_seconds_count", pipeline="m_echo") == 3
    assert delta("hayhooks_request_duration_seconds_count", pipeline="m_echo") == 4
    assert delta("hayhooks_stream_chunks_total", pipeline="m_stream") == 3
    assert value(after, "hayhooks_runs_in_flight", pipeline="m_stream") == 0
    assert value(after, "hayhooks_workers") == 1
    assert value(after, "hayhooks_worker_in_sync") == 1


async def test_rejections_are_counted_as_503(app_client, pipelines_dir):
    import asyncio

    (pipelines_dir / "m_slow").mkdir()
    (pipelines_dir / "m_slow" / "pipeline_wrapper.py").write_text(
        "import time\nfrom hayhooks import BasePipelineWrapper\n"
        "class PipelineWrapper(BasePipelineWrapper):\n"
        "    def setup(self) -> None:\n        pass\n"
        "    def run_api(self) -> str:\n        time.sleep(0.5)\n        return 'ok'\n"
    )
    client = await app_client(pipelines_dir, thread_pool_size=1, max_queued_runs=0)
    before = (await client.get("/metrics")).text
    codes = sorted(
        r.status_code for r in await asyncio.gather(*(client.post("/m_slow/run", json={}) for _ in range(3)))
    )
    assert codes == [200, 503, 503]
    after = (await client.get("/metrics")).text
    assert (
        value(after, "hayhooks_admission_rejections_total", pipeline="m_slow")
        - value(before, "hayhooks_admission_rejections_total", pipeline="m_slow")
        == 2
    )
    assert (
        value(after, "hayhooks_requests_total", pipeline="m_slow", code="503")
        - value(before, "hayhooks_requests_total", pipeline="m_slow", code="503")
        == 2
    )
    assert value(after, "hayhooks_pipeline_runs_total", pipeline="m_slow", outcome="rejected") >= 2


async def test_deploys_and_failed_deploys_are_counted(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    before = (await client.get("/metrics")).text
    files = {"pipeline_wrapper.py": (SAMPLE_PIPELINES / "echo" / "pipeline_wrapper.py").read_text()}
    assert (await client.post("/deploy-files", json={"name": "m_dep", "files": files})).status_code == 200
    assert (await client.post("/deploy-files", json={"name": "m_dep", "files": files})).status_code == 409
    assert (await client.post("/undeploy/m_dep")).status_code == 200
    after = (await client.get("/metrics")).text
    for name, labels, expected in (
        ("hayhooks_deploys_total", {"action": "deployed"}, 1),
        ("hayhooks_deploys_total", {"action": "undeployed"}, 1),
        ("hayhooks_deploy_failures_total", {"operation": "deploy", "code": "409"}, 1),
    ):
        assert value(after, name, **labels) - value(before, name, **labels) == expected, name
    assert value(after, "hayhooks_store_generation") == 2


async def test_metrics_can_be_turned_off(app_client, pipelines_dir):
    client = await app_client(pipelines_dir, metrics_enabled=False)
    r = await client.get("/metrics")
    assert r.status_code == 501 and "HAYHOOKS_METRICS_ENABLED" in r.json()["detail"]


def test_metrics_need_an_api_key_when_keys_are_configured():
    from hayhooks.errors import Unauthorized
    from hayhooks.observability.access import metrics_key_ok
    from hayhooks.settings import HayhooksSettings

    settings = HayhooksSettings(api_keys=["k1", "k2"], metrics_public=False)
    metrics_key_ok(settings, {"authorization": "Bearer k2"})
    metrics_key_ok(settings, {"x-api-key": "k1"})
    with pytest.raises(Unauthorized):
        metrics_key_ok(settings, {})
    with pytest.raises(Unauthorized):
        metrics_key_ok(settings, {"authorization": "Bearer nope"})
    metrics_key_ok(HayhooksSettings(api_keys=["k1"], metrics_public=True), {})
    metrics_key_ok(HayhooksSettings(api_keys=[], metrics_public=False), {})


def test_grafana_dashboard_queries_use_only_exported_metrics():
    from hayhooks.observability.metrics import EXPORTED

    dashboard = json.loads((ROOT / "examples" / "grafana" / "hayhooks-dashboard.json").read_text())
    exprs = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(dashboard)
    assert len(exprs) >= 6
    exported = set(EXPORTED)
    for base in EXPORTED:  # histograms export these series
        if base.endswith("_seconds"):
            exported |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    for expr in exprs:
        used = set(re.findall(r"\bhayhooks_[a-z_]+", expr))
        assert used and used <= exported, f"{expr!r} uses {used - exported}"


async def test_exported_names_match_a_real_scrape(app_client, pipelines_dir):
    """EXPORTED (which the dashboard test trusts) lists exactly the metrics /metrics exposes."""
    from hayhooks.observability.metrics import EXPORTED

    _copy(pipelines_dir, "echo", "m_names")
    client = await app_client(pipelines_dir)
    await client.post("/m_names/run", json={"name": "x"})
    files = {"pipeline_wrapper.py": (SAMPLE_PIPELINES / "echo" / "pipeline_wrapper.py").read_text()}
    await client.post("/deploy-files", json={"name": "m_names", "files": files})  # 409: a failure
    await client.post("/deploy-files", json={"name": "m_names2", "files": files})
    names = {name for name, _ in samples((await client.get("/metrics")).text)}
    # (metrics that wrapper code creates itself are exported too; only ours are checked here)
    ours = {n for n in names if n.startswith("hayhooks_")}
    bases = {re.sub(r"_(bucket|sum|count)$", "", n) if "_seconds_" in n else n for n in ours}
    assert bases <= set(EXPORTED)
    # A labelled counter shows once it has a sample; durable events are checked in the durable test.
    assert set(EXPORTED) - bases <= {"hayhooks_durable_events_total"}


def test_pushes_from_many_threads_are_all_counted_while_flushing(tmp_path):
    """Threads push runs and requests while another thread flushes over and over: the files end
    with exact totals, and the in-flight gauge's ups and downs net out."""
    import threading

    from hayhooks.observability.metrics import Metrics

    metrics = Metrics(tmp_path)
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            metrics.flush()

    def serve() -> None:
        for i in range(20_000):
            series = metrics.series("pin_threads", "run")
            run = _run("ok", 0.25 if i % 2 else 0.75, chunks=1)
            series.run_started(run)
            series.run_finished(run)
            series.answered(_answer(200 if i % 4 else 503, 0.5))

    flushing = threading.Thread(target=flusher)
    flushing.start()
    workers = [threading.Thread(target=serve) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    flushing.join()
    metrics.flush()
    labels = ("pin_threads", "run")
    assert metrics.runs.labels(*labels, "ok")._value.get() == 80_000
    assert metrics.chunks.labels(*labels)._value.get() == 80_000
    assert metrics.in_flight.labels(*labels)._value.get() == 0
    assert metrics.requests.labels("pin_threads", "run", "200")._value.get() == 60_000
    assert metrics.requests.labels("pin_threads", "run", "503")._value.get() == 20_000
    run_hist = metrics.run_duration.labels("pin_threads", "run")
    assert [b.get() for b in run_hist._buckets][:8] == [0, 0, 0, 0, 0, 40_000, 0, 40_000]
    assert run_hist._sum.get() == pytest.approx(40_000 * 0.25 + 40_000 * 0.75)
    assert metrics.request_duration.labels("pin_threads", "run")._sum.get() == pytest.approx(80_000 * 0.5)


def test_in_flight_runs_show_until_they_finish(tmp_path):
    from hayhooks.observability.metrics import Metrics

    metrics = Metrics(tmp_path)
    series = metrics.series("pin_inflight", "run")
    timing_out = _run("timeout", 0.1, status_code=504)
    series.run_started(timing_out)
    series.run_started(_run("ok", 0.1))
    metrics.flush()
    in_flight = metrics.in_flight.labels("pin_inflight", "run")
    assert in_flight._value.get() == 2
    series.run_finished(timing_out)
    metrics.flush()
    assert in_flight._value.get() == 1
    assert metrics.timeouts.labels("pin_inflight", "run")._value.get() == 1
    assert metrics.runs.labels("pin_inflight", "run", "timeout")._value.get() == 1


async def test_the_loop_flushes_without_a_thread_of_its_own(tmp_path):
    import asyncio
    import threading

    from hayhooks.observability.metrics import Metrics

    metrics = Metrics(tmp_path)
    counter = metrics.requests.labels("pin_loop", "run", "200")
    flushing = asyncio.create_task(metrics.flush_every(0.01))
    series = metrics.series("pin_loop", "run")
    for _ in range(3):
        series.answered(_answer(200, 0.01))
    for _ in range(200):
        if counter._value.get() == 3:
            break
        await asyncio.sleep(0.01)
    assert counter._value.get() == 3
    assert not [t for t in threading.enumerate() if t.name == "hayhooks-metrics"]
    series.answered(_answer(200, 0.01))
    series.answered(_answer(200, 0.01))
    flushing.cancel()
    await asyncio.gather(flushing, return_exceptions=True)
    assert counter._value.get() == 5  # the last flush runs when the flusher stops


async def test_durable_executions_and_events_are_exported(app_client, pipelines_dir):
    from test_routes_durable import FAST, wait_status, with_durable

    client = await app_client(with_durable(pipelines_dir, "durable_tasks"), **FAST)
    before = (await client.get("/metrics")).text
    done = await client.post("/durable_tasks/run-durable", json={"mode": "loop", "n": 1})
    waiting = await client.post("/durable_tasks/run-durable", json={"mode": "approve"})
    await wait_status(client, done.headers["location"], "completed")
    await wait_status(client, waiting.headers["location"], "waiting")
    after = (await client.get("/metrics")).text

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Store-wide counts: this test's pipelines directory has its own store.
    assert value(after, "hayhooks_durable_executions", status="completed") == 1
    assert value(after, "hayhooks_durable_executions", status="waiting") == 1
    assert value(after, "hayhooks_durable_executions", status="failed") == 0
    # Worker events, summed like every counter.
    assert delta("hayhooks_durable_events_total", event="claimed") == 2
    assert delta("hayhooks_durable_events_total", event="completed") == 1
    assert delta("hayhooks_durable_events_total", event="suspended") == 1
