"""Traces leave a real server over OTLP/HTTP, correctly parented, continuing the caller's trace.

The receiver is a plain HTTP server on loopback started here; it decodes each export with
opentelemetry-proto, as a collector would."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import wait_until

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "observability" / "two_steps"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Receiver:
    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans: list = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.paths.append(self.path)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        receiver.spans.extend(scope_spans.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def traced_run(
    hayhooks_server: Any, pipelines_dir: Path, receiver: Any, name: str, body: dict, **env: str
) -> tuple[Any, httpx.Response]:
    """A server exporting to ``receiver`` (``env`` added), and one run of ``name`` continuing the
    caller's trace (``traceparent`` with TRACE_ID / PARENT_ID)."""
    server = hayhooks_server(
        pipelines_dir,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200", **env},
    )
    r = httpx.post(
        f"{server.url}/{name}/run",
        json=body,
        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
        timeout=30,
    )
    return server, r


def test_one_run_gives_server_run_pipeline_and_component_spans(hayhooks_server, pipelines_dir, receiver):
    shutil.copytree(FIXTURE, pipelines_dir / "two_steps")
    server, r = traced_run(
        hayhooks_server,
        pipelines_dir,
        receiver,
        "two_steps",
        {"text": "hi"},
        OTEL_SERVICE_NAME="hayhooks-test",
    )
    assert r.status_code == 200 and r.json() == {"result": "HI!"}

    def by_name() -> dict:
        spans = {s.name: s for s in receiver.spans if s.trace_id.hex() == TRACE_ID}
        wanted = {"POST /two_steps/run", "hayhooks.pipeline.run", "haystack.pipeline.run"}
        components = [s for s in receiver.spans if s.name == "haystack.component.run"]
        return spans if wanted <= set(spans) and len(components) >= 2 else {}

    spans = wait_until(by_name, timeout=30, interval=0.2)
    assert receiver.paths and all(p == "/v1/traces" for p in receiver.paths)
    server_span = spans["POST /two_steps/run"]
    run_span = spans["hayhooks.pipeline.run"]
    haystack_span = spans["haystack.pipeline.run"]
    assert server_span.parent_span_id.hex() == PARENT_ID
    assert run_span.parent_span_id == server_span.span_id
    assert haystack_span.parent_span_id == run_span.span_id
    components = [s for s in receiver.spans if s.name == "haystack.component.run"]
    assert len(components) == 2
    assert all(c.trace_id.hex() == TRACE_ID and c.parent_span_id == haystack_span.span_id for c in components)
    names = {
        a.value.string_value for c in components for a in c.attributes if a.key == "haystack.component.name"
    }
    assert names == {"upper", "exclaim"}
    attributes = {a.key: a.value.string_value for a in run_span.attributes}
    assert attributes["hayhooks.pipeline"] == "two_steps"
    assert attributes["hayhooks.surface"] == "run" and attributes["hayhooks.outcome"] == "ok"
    status = {a.key: a.value.int_value for a in server_span.attributes}
    assert status["http.response.status_code"] == 200


SPAN_NAMES = Path(__file__).resolve().parents[1] / "fixtures" / "observability" / "span_names"


def test_excluded_span_names_are_not_exported(hayhooks_server, pipelines_dir, receiver):
    shutil.copytree(SPAN_NAMES, pipelines_dir / "span_names")
    server, r = traced_run(
        hayhooks_server,
        pipelines_dir,
        receiver,
        "span_names",
        {"tag": "t"},
        HAYHOOKS_TRACING_EXCLUDED_SPANS="send, receive, noisy.step",
    )
    assert r.status_code == 200, r.text

    def names() -> set[str]:
        seen = {s.name for s in receiver.spans if s.trace_id.hex() == TRACE_ID}
        return seen if {"POST /span_names/run", "kept.step", "send_email"} <= seen else set()

    seen = wait_until(names, timeout=30, interval=0.2)
    server.proc.send_signal(__import__("signal").SIGTERM)  # shutdown flushes whatever is left
    server.proc.wait(30)
    seen = {s.name for s in receiver.spans if s.trace_id.hex() == TRACE_ID}
    assert {"POST /span_names/run", "hayhooks.pipeline.run", "kept.step", "send_email"} <= seen
    assert not seen & {"POST /fake http send", "POST /fake http receive", "noisy.step"}
    kept = next(s for s in receiver.spans if s.name == "kept.step")
    run = next(s for s in receiver.spans if s.name == "hayhooks.pipeline.run")
    assert kept.parent_span_id == run.span_id  # what stays keeps its place in the trace


def test_span_name_matching_is_exact_or_the_asgi_child_form():
    from hayhooks.observability.span_filter import SpanNames
    from hayhooks.settings import HayhooksSettings

    default = SpanNames(HayhooksSettings().tracing_excluded_spans)
    assert "POST /x/run http send" in default and "GET /sse websocket receive" in default
    assert "send" in default and "receive" in default
    for kept in (
        "send_email",
        "POST /x/run",
        "hayhooks.pipeline.run",
        "resend",
        "http send now",
        "xhttp send",
    ):
        assert kept not in default, kept
    assert "noisy" not in SpanNames([]) and "noisy" in SpanNames(["noisy", " "])
