"""``hayhooks mcp run``: a standalone MCP server over a pipelines directory.

It builds the same ``PipelineService`` as every ``hayhooks run`` worker and follows the directory
like one, so pipelines deployed through a server sharing the directory show up in its tools too.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hayhooks.cli.common import AdditionalPythonPathOption, PipelinesDirOption
from hayhooks.logger import configure_logging

mcp_app = typer.Typer(
    name="mcp",
    help="Serve the pipelines as MCP tools (Streamable HTTP, SSE or stdio).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


class TransportChoice(str, Enum):
    http = "http"
    stdio = "stdio"


# As in Hayhooks 2.x, `-h` is the host here (`--help` still shows the help).
@mcp_app.command("run", context_settings={"help_option_names": ["--help"]})
def run(
    host: Annotated[
        Optional[str],
        typer.Option(
            "--host",
            "-h",
            help="Address to bind to (http transport). \\[env: HAYHOOKS_MCP_HOST; default: 127.0.0.1]",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        Optional[int],
        typer.Option(
            "--port",
            "-p",
            help="Port to listen on (http transport). \\[env: HAYHOOKS_MCP_PORT; default: 1417]",
            show_default=False,
        ),
    ] = None,
    pipelines_dir: PipelinesDirOption = None,
    transport: Annotated[
        TransportChoice,
        typer.Option(
            "--transport",
            help="`http`: Streamable HTTP at /mcp plus SSE at /sse and /messages/. "
            "`stdio`: for MCP clients that launch the server as a command.",
        ),
    ] = TransportChoice.http,
    additional_python_path: AdditionalPythonPathOption = None,
    json_response: Annotated[
        bool,
        typer.Option(
            "--json-response",
            "-j",
            help="Streamable HTTP answers each call with one JSON body instead of an SSE stream (no progress).",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Add tracebacks to error messages (HAYHOOKS_SHOW_TRACEBACKS)."),
    ] = False,
) -> None:
    """Run an MCP server whose tools are the pipelines of the pipelines directory."""
    if transport is TransportChoice.stdio:
        # Before anything can print: stdout is the protocol wire from here on.
        wire_in, wire_out = _claim_stdio()
    settings = _settings(host, port, pipelines_dir, additional_python_path)
    if debug:
        settings = settings.model_copy(update={"show_tracebacks": True})
    configure_logging(
        settings.log_level,
        tag="hayhooks-mcp",
        log_format=settings.log_format,
        intercepted=settings.intercepted_loggers,
    )
    if transport is TransportChoice.stdio:
        asyncio.run(_serve_stdio(settings, wire_in, wire_out))
    else:
        _serve_http(settings, json_response=json_response)


def _settings(
    host: Optional[str],
    port: Optional[int],
    pipelines_dir: Optional[Path],
    additional_python_path: Optional[str],
) -> Any:
    from hayhooks.cli.common import build_settings

    flags = {"pipelines_dir": pipelines_dir, "additional_python_path": additional_python_path}
    settings = build_settings({k: v for k, v in flags.items() if v is not None})
    # The MCP server binds mcp_host / mcp_port; deploy protection judges that address.
    return settings.model_copy(
        update={"host": host or settings.mcp_host, "port": port if port is not None else settings.mcp_port}
    )


# -- http ------------------------------------------------------------------------------------------
def build_http_app(settings: Any, json_response: bool = False) -> Any:
    """The standalone app: MCP routes, ``GET /health`` (with readiness and tools), ``GET /status``
    (``{"status": "ok"}``, as in 2.x), ``GET /ready`` and the SIGTERM drain of ``hayhooks run``
    (503 while loading or draining), its observability (``GET /metrics``, ``GET /traces``, request
    ids, log formats) and the service started in its lifespan.

    A FastAPI app (with no docs or OpenAPI routes) rather than a bare Starlette one, so the error
    handlers and ``hayhooks.observability.install`` are the very ones the main server uses.
    """
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import BaseRoute, Route

    from hayhooks import observability
    from hayhooks.mcp import mcp_routes
    from hayhooks.mcp.server import HayhooksMCP
    from hayhooks.pipelines.service import PipelineService
    from hayhooks.server.drain import Drain
    from hayhooks.server.errors import install_error_handlers
    from hayhooks.server.fastapi_options import without_fastapi_telemetry
    from hayhooks.server.protection import install_security
    from hayhooks.server.routes.health import ready

    service = PipelineService(settings)
    bridge = HayhooksMCP(service, transport="http")
    # One process: stateful sessions are safe here and let handshake-era Streamable HTTP clients
    # receive list_changed notifications on their GET stream.
    routes: list[BaseRoute] = [*mcp_routes(bridge, stateless=False, json_response=json_response)]

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "ready": service.ready, "tools": [t.name for t in bridge.tools()]}
        )

    async def status(request: Request) -> JSONResponse:
        # The probe of Hayhooks 2.x's standalone MCP server: container health checks call it.
        return JSONResponse({"status": "ok"})

    routes.append(Route("/health", health, methods=["GET"]))
    routes.append(Route("/status", status, methods=["GET"]))
    routes.append(Route("/ready", ready, methods=["GET"]))  # the very probe of `hayhooks run`
    observing: list[Any] = []  # the lifespan part of observability.install, set below

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await service.start()
        # SIGTERM: /ready answers 503 at once; HAYHOOKS_SHUTDOWN_DELAY, then uvicorn's drain.
        drain = Drain(service, settings.shutdown_delay)
        drained = drain.install()
        try:
            async with observing[0]:  # metrics, recent runs, trace export: as in create_app
                await service.wait_ready()
                async with bridge.running():
                    yield
        finally:
            if drained:
                drain.uninstall()
            await service.stop()

    app = FastAPI(
        routes=routes,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        **without_fastapi_telemetry(),
    )
    app.state.service = service
    app.state.settings = settings
    app.state.mcp = bridge
    install_error_handlers(app, settings.show_tracebacks)
    observing.append(observability.install(app, service))
    install_security(app, settings, public_paths=("/health", "/status", "/ready"))
    return app


def _serve_http(settings: Any, json_response: bool = False) -> None:
    import uvicorn

    from hayhooks.observability.logs import uvicorn_log_config
    from hayhooks.observability.runner import instance_metrics_dir
    from hayhooks.server import protocols
    from hayhooks.server.runner import exit_zero_after_sigterm

    logging.getLogger("hayhooks").info(
        "MCP server on http://%s:%s (Streamable HTTP: /mcp, SSE: /sse)", settings.host, settings.port
    )
    # A metrics directory of its own, as every `hayhooks run` instance has: a `hayhooks run` on the
    # same pipelines directory (or a parent's PROMETHEUS_MULTIPROC_DIR) never mixes into its counts.
    # Exiting normally after SIGTERM (as `hayhooks run` does) is what lets it remove the directory.
    protocols.header_read_timeout = settings.header_read_timeout
    with exit_zero_after_sigterm(), instance_metrics_dir():
        uvicorn.run(
            build_http_app(settings, json_response=json_response),
            host=settings.host,
            port=settings.port,
            root_path=settings.root_path,
            log_level=settings.log_level.lower(),
            access_log=settings.access_log,
            # uvicorn's loggers named in HAYHOOKS_INTERCEPTED_LOGGERS write in our format, as on `run`.
            log_config=uvicorn_log_config(
                settings.log_format, settings.access_log_excluded_path_prefixes, settings.intercepted_loggers
            ),
            # In-flight tool calls get HAYHOOKS_GRACEFUL_SHUTDOWN_TIMEOUT; open SSE streams are then cut.
            timeout_graceful_shutdown=settings.graceful_shutdown_timeout,
            # uvicorn's HTTP protocol plus HAYHOOKS_HEADER_READ_TIMEOUT against slow clients.
            http=protocols.protocol_name(),
        )


# -- stdio -----------------------------------------------------------------------------------------
def _claim_stdio() -> tuple[int, int]:
    """Keep the real stdin/stdout for the protocol; point fd 0 at /dev/null and fd 1 at stderr.

    Pipeline code that prints (or reads stdin) while loading or running can then never corrupt the
    JSON-RPC stream.
    """
    sys.stdout.flush()
    wire_out = os.dup(1)
    wire_in = os.dup(0)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    return wire_in, wire_out


async def _serve_stdio(settings: Any, wire_in: int, wire_out: int) -> None:
    import anyio

    from hayhooks.mcp.server import HayhooksMCP
    from hayhooks.pipelines.service import PipelineService

    stdin = anyio.wrap_file(io.TextIOWrapper(os.fdopen(wire_in, "rb"), encoding="utf-8", errors="replace"))
    stdout = anyio.wrap_file(io.TextIOWrapper(os.fdopen(wire_out, "wb"), encoding="utf-8", newline="\n"))
    service = PipelineService(settings)
    await service.start()
    try:
        await service.wait_ready()
        logging.getLogger("hayhooks").info(
            "MCP server on stdio, %d pipeline(s) from %s",
            len(service.registry.names()),
            settings.pipelines_dir,
        )
        await HayhooksMCP(service, transport="stdio").run_stdio(stdin, stdout)
    finally:
        await service.stop()
