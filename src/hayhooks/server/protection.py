"""``install_security(app, settings)``: everything that protects an app, wired in one call.

One middleware (``hayhooks.server.guard.Edge``), in this order: CORS (answers preflights before
any key is asked for, and decorates refusals so browsers can read them) → access rules (API keys,
MCP ``Origin``) → body size limits → the app. Also: validation errors that never echo huge
inputs, and the security schemes in the OpenAPI document. (JSON nested too deeply is refused where
it is parsed: pydantic's parser has a depth limit, the OpenAI routes and form fields catch
``RecursionError``, FastAPI answers 400 for its body models.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware

from hayhooks.server.guard import Edge
from hayhooks.server.paths import route_kind
from hayhooks.server.validation import clip_errors
from hayhooks.settings import HayhooksSettings


def install_security(app: Starlette, settings: HayhooksSettings, public_paths: Iterable[str] = ()) -> None:
    """Protect ``app`` (the main FastAPI app, or the standalone MCP Starlette app).

    ``public_paths`` are always open (e.g. the standalone MCP server's ``/status`` health check).
    """
    # Innermost of the app's middleware (``add_middleware`` would make it the outermost): the
    # request-id layer wraps it, so refusals (401, 403, 413, CORS) carry an id and a server span too.
    app.user_middleware.append(Middleware(Edge, settings=settings, public_paths=tuple(public_paths)))  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    if isinstance(app, FastAPI):
        declare_security(app, settings)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": jsonable_encoder(clip_errors(exc.errors()))}, status_code=422)


# -- OpenAPI ---------------------------------------------------------------------------------------
API_KEY_SCHEMES = {
    "APIKeyBearer": {"type": "http", "scheme": "bearer", "description": "One of HAYHOOKS_API_KEYS"},
    "APIKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of HAYHOOKS_API_KEYS",
    },
}
ADMIN_SCHEME = {"AdminToken": {"type": "http", "scheme": "bearer", "description": "HAYHOOKS_ADMIN_TOKEN"}}


def declare_security(app: FastAPI, settings: HayhooksSettings) -> None:
    """Wrap ``app.openapi`` (whoever builds it) so the document declares who needs which credential.

    The schema builder caches its document; this marks it in place, once per built document.
    """
    build: Callable[[], dict[str, Any]] = app.openapi
    keyed = {"serving", "mcp", "metrics"} | ({"docs"} if settings.protect_docs else set())

    def openapi() -> dict[str, Any]:
        schema = build()
        if schema.get("x-hayhooks-security") or not (settings.api_keys or settings.admin_token):
            return schema
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        if settings.api_keys:
            schemes.update(API_KEY_SCHEMES)
        if settings.admin_token:
            schemes.update(ADMIN_SCHEME)
        for path, operations in schema.get("paths", {}).items():
            kind = route_kind(path)
            requirement: list[dict[str, list[str]]] | None = None
            if kind == "deploy" and settings.admin_token:
                requirement = [{"AdminToken": []}]
            elif kind in keyed and settings.api_keys:
                requirement = [{name: []} for name in API_KEY_SCHEMES]
            if requirement is not None:
                for operation in operations.values():
                    if isinstance(operation, dict):
                        operation["security"] = requirement
        schema["x-hayhooks-security"] = True
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
