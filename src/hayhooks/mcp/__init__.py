"""MCP front end: pipelines as tools, over Streamable HTTP (``/mcp``), legacy SSE (``/sse`` +
``/messages/``) and stdio (``hayhooks mcp run --transport stdio``)."""

from __future__ import annotations

import importlib
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from starlette.routing import Route

    from hayhooks.mcp.server import HayhooksMCP

__all__ = ["CORE_TOOLS", "HayhooksMCP", "check_admin", "install", "is_tool", "mcp_routes", "pipeline_tool"]
# Lazily re-exported names -> the module that defines them.
_LAZY = {
    "CORE_TOOLS": "hayhooks.mcp.tools",
    "HayhooksMCP": "hayhooks.mcp.server",
    "check_admin": "hayhooks.mcp.tools",
    "is_tool": "hayhooks.mcp.tools",
    "pipeline_tool": "hayhooks.mcp.tools",
}


def __getattr__(name: str) -> Any:
    # The MCP SDK is heavy to import: load it when a server needs it, not for every CLI call.
    module = _LAZY.get(name)
    if module is not None:
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'hayhooks.mcp' has no attribute {name!r}")

MCP_PATH = "/mcp"
SSE_PATH = "/sse"
MESSAGES_PATH = "/messages/"


def mcp_routes(bridge: HayhooksMCP, *, stateless: bool = True) -> list[Route]:
    """Starlette routes of the HTTP transports (exact paths, so they never shadow pipeline routes)."""
    from starlette.routing import Route

    streamable = bridge.streamable_http_app(stateless=stateless)
    sse_connect, sse_post = bridge.sse_apps(MESSAGES_PATH)
    return [
        Route(MCP_PATH, endpoint=streamable, methods=["GET", "POST", "DELETE"], name="mcp"),
        Route(SSE_PATH, endpoint=sse_connect, methods=["GET"], name="mcp_sse"),
        Route(MESSAGES_PATH, endpoint=sse_post, methods=["POST"], name="mcp_messages"),
    ]


def install(app: Any, service: Any, *, stateless: bool = True) -> Optional[AbstractAsyncContextManager[None]]:
    """Mount the MCP endpoints on ``app`` (FastAPI/Starlette) over ``service``.

    Returns the async context manager the app's lifespan must enter (it runs the Streamable HTTP
    session manager and binds list-changed notifications to the serving loop). Stateless Streamable
    HTTP is the default so any worker can answer any request (``--workers N`` needs no sticky routing).
    """
    from hayhooks.mcp.server import HayhooksMCP

    bridge = HayhooksMCP(service, transport="http")
    # First in the route list: a later catch-all such as ``/{name}`` must not shadow ``/mcp``.
    app.router.routes[0:0] = mcp_routes(bridge, stateless=stateless)
    app.state.mcp = bridge
    return bridge.running()
