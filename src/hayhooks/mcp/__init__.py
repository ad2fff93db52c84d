"""MCP front end: pipelines as tools, over Streamable HTTP (``/mcp``), legacy SSE (``/sse`` +
``/messages/``) and stdio (``hayhooks mcp run --transport stdio``)."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
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


def mcp_routes(bridge: HayhooksMCP, *, stateless: bool = True, json_response: bool = False) -> list[Route]:
    """Starlette routes of the HTTP transports (exact paths, so they never shadow pipeline routes)."""
    from starlette.routing import Route

    streamable = bridge.streamable_http_app(stateless=stateless, json_response=json_response)
    sse_connect, sse_post = bridge.sse_apps(MESSAGES_PATH)
    return [
        Route(MCP_PATH, endpoint=streamable, methods=["GET", "POST", "DELETE"], name="mcp"),
        Route(SSE_PATH, endpoint=sse_connect, methods=["GET"], name="mcp_sse"),
        Route(MESSAGES_PATH, endpoint=sse_post, methods=["POST"], name="mcp_messages"),
    ]


def install(app: Any, service: Any, *, stateless: bool = True) -> Optional[AbstractAsyncContextManager[None]]:
    """Mount the MCP endpoints on ``app`` (FastAPI/Starlette) over ``service``.

    The MCP server is built on the first MCP request, so a worker that nobody reaches over MCP never
    imports the SDK (about 25 MiB per worker). Returns the context manager the app's lifespan
    enters; on shutdown it stops the MCP server if one was started. Stateless Streamable HTTP is the
    default so any worker can answer any request (``--workers N`` needs no sticky routing).
    """
    from starlette.routing import Route

    lazy = _LazyMCP(app, service, stateless)
    # First in the route list: a later catch-all such as ``/{name}`` must not shadow ``/mcp``.
    app.router.routes[0:0] = [
        Route(MCP_PATH, endpoint=_Endpoint(lazy, MCP_PATH), methods=["GET", "POST", "DELETE"], name="mcp"),
        Route(SSE_PATH, endpoint=_Endpoint(lazy, SSE_PATH), methods=["GET"], name="mcp_sse"),
        Route(MESSAGES_PATH, endpoint=_Endpoint(lazy, MESSAGES_PATH), methods=["POST"], name="mcp_messages"),
    ]
    return lazy.lifespan()


class _LazyMCP:
    def __init__(self, app: Any, service: Any, stateless: bool) -> None:
        self.app, self.service, self.stateless = app, service, stateless
        self._endpoints: Optional[dict[str, Any]] = None
        self._lock: Optional[asyncio.Lock] = None
        self._stop: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task[None]] = None

    async def endpoint(self, path: str) -> Any:
        if self._endpoints is None:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if self._endpoints is None:
                    await self._start()
        assert self._endpoints is not None
        return self._endpoints[path]

    async def _start(self) -> None:
        from hayhooks.mcp.server import HayhooksMCP

        bridge = HayhooksMCP(self.service, transport="http")
        routes = mcp_routes(bridge, stateless=self.stateless)
        started, self._stop = asyncio.Event(), asyncio.Event()
        stop = self._stop

        async def serve() -> None:
            # Entered and exited in this one task: the session manager's task group requires it.
            async with bridge.running():
                started.set()
                await stop.wait()

        self._task = asyncio.create_task(serve(), name="hayhooks-mcp")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiter.cancel()
            self._task.result()  # re-raises why the MCP server could not start
        self.app.state.mcp = bridge
        self._endpoints = {route.path: route.endpoint for route in routes}

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self._task is not None and self._stop is not None:
                self._stop.set()
                await self._task


class _Endpoint:
    """An ASGI endpoint that builds the MCP server on first use, then delegates to it."""

    def __init__(self, lazy: _LazyMCP, path: str) -> None:
        self.lazy, self.path = lazy, path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = await self.lazy.endpoint(self.path)
        await app(scope, receive, send)
