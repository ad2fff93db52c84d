"""Constructor options every Hayhooks FastAPI app shares (the main app and the standalone MCP app)."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI


def without_fastapi_telemetry() -> dict[str, Any]:
    """Recent FastAPI versions record their own OpenTelemetry spans, metrics and logs per request.
    Hayhooks records its own (``hayhooks.observability``: one server span per request, a run span
    per run); FastAPI's would duplicate them, and asking whether they are on costs every request
    three provider lookups (about 2% of an echo request)."""
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    return {}
