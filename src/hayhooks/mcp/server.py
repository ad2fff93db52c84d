"""The MCP server over a ``PipelineService``: one low-level ``mcp`` Server, any number of transports.

Tools are read from the registry on every ``tools/list``, so a deploy, overwrite or undeploy shows
at once. Registry changes are fanned out as ``notifications/tools/list_changed`` to live
handshake-era sessions (SSE, stdio, stateful Streamable HTTP) and as ``ToolsListChanged`` events to
2026-era ``subscriptions/listen`` streams. The tools themselves are defined in ``hayhooks.mcp.tools``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Optional

import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Receive, Scope, Send

from hayhooks.errors import HayhooksError, NotSupported, PipelineNotFound
from hayhooks.logger import log
from hayhooks.mcp import results
from hayhooks.mcp.tools import (
    CORE_TOOLS,
    CoreTool,
    Transport,
    _DeployArgs,
    _NameArgs,
    call_kwargs,
    check_admin,
    is_tool,
    pipeline_tool,
)
from hayhooks.observability import observed
from hayhooks.pipelines.models import LoadedPipeline
from hayhooks.version import __version__

INSTRUCTIONS = (
    "Haystack pipelines served by Hayhooks. Each pipeline tool runs one pipeline; "
    "get_all_pipeline_statuses / get_pipeline_status report what is deployed, "
    "deploy_pipeline / undeploy_pipeline change it (admin only)."
)

READY_TIMEOUT = 120.0  # seconds a request waits for a starting worker to finish loading

LOOPBACK_HOSTS = ["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*"]
LOOPBACK_ORIGINS = [
    "http://127.0.0.1:*",
    "http://localhost:*",
    "http://[::1]:*",
    "https://127.0.0.1:*",
    "https://localhost:*",
    "https://[::1]:*",
]


class _HayhooksServer(Server[Any]):
    """Advertises ``tools.listChanged`` on every transport, whoever builds the init options."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True),
            experimental_capabilities,
            extensions,
        )


class _ASGI:
    """Wraps an ASGI callable so Starlette's ``Route`` treats it as an app, not a request handler."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


# -- the bridge ------------------------------------------------------------------------------------
class HayhooksMCP:
    """MCP front end of one ``PipelineService``."""

    def __init__(
        self,
        service: Any,
        *,
        transport: Transport = "http",
    ) -> None:
        self.service = service
        self.settings = service.settings
        self.transport = transport
        self.bus = InMemorySubscriptionBus()
        self.listen_handler = ListenHandler(self.bus)
        self.server = _HayhooksServer(
            "hayhooks",
            version=__version__,
            instructions=INSTRUCTIONS,
            get_tool_input_schema=self._input_schema,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=self.listen_handler,
        )
        self.server.middleware.append(self._track_connection)
        # Handshake-era connections with a channel for server-initiated notifications.
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._exposed: set[str] = {p.name for p in service.registry.all() if is_tool(p)}
        self.session_manager: Optional[StreamableHTTPSessionManager] = None
        self.sse: Optional[SseServerTransport] = None
        service.registry.add_listener(self._on_registry_change)

    # -- tools ---------------------------------------------------------------------------------
    def tools(self) -> list[types.Tool]:
        tools = [
            t.tool() for t in CORE_TOOLS.values() if not (t.admin and self.settings.disable_runtime_deploy)
        ]
        tools.extend(pipeline_tool(p) for p in self.service.registry.all() if is_tool(p))
        return tools

    def _input_schema(self, name: str) -> Optional[dict[str, Any]]:
        core = CORE_TOOLS.get(name)
        if core is not None:
            return core.args.model_json_schema()
        pipeline = self.service.registry.get(name)
        return pipeline_tool(pipeline).input_schema if pipeline is not None and is_tool(pipeline) else None

    async def _until_ready(self) -> None:
        """A worker still loading its pipelines holds MCP requests (bounded) rather than under-report."""
        if not getattr(self.service, "ready", True):
            await self.service.wait_ready(READY_TIMEOUT)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        await self._until_ready()
        return types.ListToolsResult(tools=self.tools())

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        await self._until_ready()
        name = params.name
        arguments = params.arguments or {}
        headers = getattr(ctx.request, "headers", None)
        core = CORE_TOOLS.get(name)
        if core is not None:
            try:
                return await self._call_core(core, arguments, ctx.request)
            except Exception as exc:
                log.info("MCP tool '%s' failed: %s", name, exc)
                return results.error_result(exc)
        pipeline = self.service.registry.get(name)
        if pipeline is None or not is_tool(pipeline):
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {name}")
        try:
            return await self._call_pipeline(ctx, pipeline, arguments, headers)
        except Exception as exc:
            log.info("MCP tool '%s' failed: %s", name, exc, exc_info=not isinstance(exc, HayhooksError))
            return results.error_result(exc)

    async def _call_core(
        self, core: CoreTool, arguments: dict[str, Any], request: Any
    ) -> types.CallToolResult:
        args = core.args.model_validate(arguments)
        if core.admin:
            check_admin(self.settings, self.transport, request)
        service = self.service
        if core.name == "get_all_pipeline_statuses":
            return results.value_result(await asyncio.to_thread(service.status))
        if core.name == "get_pipeline_status":
            assert isinstance(args, _NameArgs)
            pipeline = service.registry.get(args.name)
            if pipeline is not None:
                return results.value_result(
                    {**pipeline.info(), "status": "up", "mcp_tool": is_tool(pipeline)}
                )
            for failure in service.registry.failures():
                if failure.name == args.name:
                    return results.value_result({**failure.info(), "status": "failed"})
            raise PipelineNotFound(f"Pipeline '{args.name}' not found")
        if core.name == "deploy_pipeline":
            assert isinstance(args, _DeployArgs)
            outcome = await service.deploy_files(
                args.name, args.files, overwrite=args.overwrite, save_files=args.save_files
            )
            return results.value_result(outcome)
        if core.name == "undeploy_pipeline":
            assert isinstance(args, _NameArgs)
            return results.value_result(await service.undeploy(args.name))
        raise NotSupported(f"Unknown core tool {core.name}")  # pragma: no cover

    async def _call_pipeline(
        self,
        ctx: ServerRequestContext[Any, Any],
        pipeline: LoadedPipeline,
        arguments: dict[str, Any],
        headers: Any,
    ) -> types.CallToolResult:
        run = pipeline.run
        assert run is not None
        kwargs = call_kwargs(pipeline, arguments, headers)
        executor = self.service.executor
        value = await observed(
            self.service,
            pipeline.name,
            "mcp",
            executor.call(pipeline, run.method_name, run.is_async, **kwargs),
        )
        if results.stream_kind(value) is None:
            return results.value_result(value)
        parts: list[str] = []
        # The executor pulls sync streams off the loop and closes any stream left early.
        async for chunk in executor.aiter(results.unwrap_stream(value)):
            text = results.chunk_text(chunk)
            if not text:
                continue
            parts.append(text)
            # A no-op unless the client sent a progress token with this call.
            await ctx.session.report_progress(float(len(parts)), None, text)
        return results.text_result("".join(parts))

    # -- list_changed fan-out ------------------------------------------------------------------
    async def _track_connection(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        # The SDK hands handlers a per-request ServerSession; the connection behind it is what can
        # carry later server-initiated notifications (SSE / stdio / stateful Streamable HTTP).
        connection = getattr(ctx.session, "_connection", None)
        if (
            isinstance(connection, Connection)
            and connection.has_standalone_channel
            and connection.protocol_version not in MODERN_PROTOCOL_VERSIONS
            and connection.initialize_accepted
            and connection not in self._connections
        ):
            self._connections.add(connection)
            connection.exit_stack.callback(self._connections.discard, connection)
        return result

    def _on_registry_change(self, changed: set[str]) -> None:
        """Registry listener: called from any thread after the serving set changed."""
        exposed = {p.name for p in self.service.registry.all() if is_tool(p)}
        relevant = bool(changed & (exposed | self._exposed))
        self._exposed = exposed
        loop = self._loop
        if not relevant or loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._start_notify)
        except RuntimeError:  # loop closing
            pass

    def _start_notify(self) -> None:
        task = asyncio.ensure_future(self.notify_tools_changed())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def notify_tools_changed(self) -> None:
        """Tell every live session that the tool list changed (must run on the serving loop)."""
        await self.bus.publish(ToolsListChanged())
        for connection in list(self._connections):
            await connection.send_tool_list_changed()  # best effort, never raises

    @property
    def live_sessions(self) -> int:
        return len(self._connections)

    # -- transports ----------------------------------------------------------------------------
    def _security(self) -> Optional[TransportSecuritySettings]:
        """DNS-rebinding protection for loopback servers (where deploys need no token)."""
        if not self.settings.bound_to_loopback:
            return None
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=LOOPBACK_HOSTS,
            allowed_origins=LOOPBACK_ORIGINS,
        )

    def streamable_http_app(self, *, stateless: bool = True) -> ASGIApp:
        if self.session_manager is None:
            self.session_manager = StreamableHTTPSessionManager(
                app=self.server, stateless=stateless, security_settings=self._security()
            )
        return _ASGI(self.session_manager.handle_request)

    def sse_apps(self, messages_path: str = "/messages/") -> tuple[ASGIApp, ASGIApp]:
        """(GET stream app, POST message app) of the legacy SSE transport."""
        if self.sse is None:
            self.sse = SseServerTransport(messages_path, security_settings=self._security())
        sse = self.sse

        async def connect(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                async with sse.connect_sse(scope, receive, send) as (read_stream, write_stream):
                    await self.server.run(
                        read_stream, write_stream, self.server.create_initialization_options()
                    )
            except ValueError as exc:  # request refused (the response is already sent)
                log.debug("SSE connection refused: %s", exc)

        return _ASGI(connect), _ASGI(sse.handle_post_message)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve: bind registry notifications to this loop and run the Streamable HTTP sessions."""
        self._loop = asyncio.get_running_loop()
        try:
            if self.session_manager is not None:
                async with self.session_manager.run():
                    try:
                        yield
                    finally:
                        self.listen_handler.close()
            else:
                try:
                    yield
                finally:
                    self.listen_handler.close()
        finally:
            self._loop = None
            for task in list(self._tasks):
                task.cancel()

    async def run_stdio(self, stdin: Any = None, stdout: Any = None) -> None:
        """Serve one client over stdin/stdout until it closes the pipe."""
        from mcp.server.stdio import stdio_server

        async with self.running():
            async with stdio_server(stdin, stdout) as (read_stream, write_stream):
                await self.server.run(read_stream, write_stream, self.server.create_initialization_options())
