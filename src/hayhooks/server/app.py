"""The app factory. ``create_app(settings)`` wires store → registry → routes explicitly;
the module-level ``app`` (for ``uvicorn hayhooks.server.app:app`` / ``fastapi run``) is just
``create_app()`` with settings from the environment.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Optional

from fastapi import FastAPI

from hayhooks import observability
from hayhooks.durable.worker import DurableRuntime
from hayhooks.logger import configure_logging
from hayhooks.pipelines.service import PipelineService
from hayhooks.server import docs, openapi
from hayhooks.server.drain import Drain
from hayhooks.server.errors import install_error_handlers
from hayhooks.server.fastapi_options import without_fastapi_telemetry
from hayhooks.server.protection import install_security
from hayhooks.server.routes import deploy, draw, durable, health, run, status
from hayhooks.settings import HayhooksSettings
from hayhooks.version import __version__


def _dialects() -> list[Any]:
    """API dialects that register their own routes over the same service (OpenAI, MCP)."""
    found = []
    for module in ("hayhooks.openai", "hayhooks.mcp"):
        try:
            found.append(__import__(module, fromlist=["install"]))
        except ImportError as exc:  # pragma: no cover - a dialect that is not installed is skipped
            logging.getLogger("hayhooks").warning("API dialect %s unavailable: %s", module, exc)
    return [m for m in found if hasattr(m, "install")]


def create_app(settings: Optional[HayhooksSettings] = None) -> FastAPI:
    settings = settings or HayhooksSettings()
    configure_logging(
        settings.log_level, log_format=settings.log_format, intercepted=settings.intercepted_loggers
    )
    service = PipelineService(settings)
    durable_runtime = DurableRuntime(service, settings)
    dialect_contexts: list[Any] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await service.start()
            stack.push_async_callback(service.stop)
            await durable_runtime.start()
            stack.push_async_callback(durable_runtime.stop)
            drain = Drain(service, settings.shutdown_delay)  # SIGTERM: /ready 503, then drain
            if drain.install():
                stack.callback(drain.uninstall)
            for ctx in dialect_contexts:
                await stack.enter_async_context(ctx)
            yield

    app = FastAPI(
        title="Hayhooks",
        version=__version__,
        description="Haystack pipelines served as HTTP, OpenAI-compatible and MCP APIs.",
        lifespan=lifespan,
        docs_url=None,  # served by hayhooks.server.docs, from local assets
        redoc_url=None,
        **without_fastapi_telemetry(),
    )
    # HAYHOOKS_ROOT_PATH / --root-path: uvicorn gets it from run_server; the attribute (not the
    # constructor argument, deprecated in FastAPI) also covers `uvicorn hayhooks.server.app:app`.
    app.root_path = settings.root_path
    app.state.service = service
    app.state.settings = settings
    app.state.durable = durable_runtime
    install_error_handlers(app, settings.show_tracebacks)
    dialect_contexts.append(observability.install(app, service))
    for module in (health, status, draw, durable):
        app.include_router(module.router)
    deploy.install(app, settings)
    for dialect in _dialects():
        ctx = dialect.install(app, service)
        if ctx is not None:
            dialect_contexts.append(ctx)
    docs.install(app)
    # First in the route table, yet it declines reserved names: see routes/run.py.
    run.install(app)
    openapi.install(app, service)
    install_security(app, settings)  # after openapi.install: it declares the security schemes
    return app


def create_app_from_env() -> FastAPI:
    """Factory used by worker processes (``uvicorn --factory``): settings come from HAYHOOKS_*."""
    return create_app(HayhooksSettings())


app = create_app_from_env()
