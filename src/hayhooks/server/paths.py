"""Which rule applies to a request path: shared by the access guard, CORS and the OpenAPI schemes."""

from __future__ import annotations

from typing import Literal

from starlette.types import Scope

RouteKind = Literal["open", "docs", "deploy", "mcp", "metrics", "serving"]

OPEN_PATHS = frozenset({"/health", "/ready"})
DOCS_PATHS = frozenset({"/docs", "/redoc", "/openapi.json", "/openapi.yaml"})
DOCS_PREFIXES = ("/docs/", "/redoc/")  # oauth2-redirect, locally served UI assets
DEPLOY_PATHS = frozenset({"/deploy", "/deploy-files", "/deploy_files", "/deploy-yaml", "/deploy_yaml"})
MCP_PATHS = frozenset({"/mcp", "/mcp/", "/sse", "/sse/", "/messages", "/messages/"})
OPENAI_PATHS = frozenset({"/models", "/chat/completions", "/responses", "/files"})


def route_path(scope: Scope) -> str:
    """The path the router sees (without the ASGI ``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def route_kind(path: str) -> RouteKind:
    """Which rule applies to a path. Anything unknown is a serving route (the safe default)."""
    if path in OPEN_PATHS:
        return "open"
    if path in DOCS_PATHS or path.startswith(DOCS_PREFIXES):
        return "docs"
    if path in DEPLOY_PATHS or path.startswith("/undeploy/"):
        return "deploy"
    if path in MCP_PATHS:
        return "mcp"
    if path == "/metrics":
        return "metrics"
    return "serving"


def is_openai_path(path: str) -> bool:
    return path == "/v1" or path.startswith(("/v1/", "/models/")) or path in OPENAI_PATHS
