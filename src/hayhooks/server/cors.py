"""CORS as Hayhooks 2.x configures it (``HAYHOOKS_CORS_*``), except where it would let a web page deploy.

Three policies, chosen by path:

- serving routes: exactly the configured settings (default: any origin, so browser front ends such
  as Open WebUI's direct connections work out of the box);
- deploy routes (``/deploy*``, ``/undeploy/*``): no CORS answer at all, unless an admin token is set
  and then only for origins listed by name (``*`` and the regex never count);
- MCP transports: origins listed by name, the regex, and pages on this machine (the MCP ``Origin``
  check in ``hayhooks.server.guard`` accepts the same); ``Mcp-Session-Id`` is exposed to them.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from hayhooks.security import LOOPBACK_ORIGIN_REGEX, explicit_origins
from hayhooks.server.paths import RouteKind
from hayhooks.settings import HayhooksSettings


class CORSPolicies:
    """One Starlette ``CORSMiddleware`` per route kind, each in front of the same ``app``."""

    def __init__(self, app: ASGIApp, settings: HayhooksSettings) -> None:
        common: dict[str, Any] = {
            "allow_methods": settings.cors_allow_methods,
            "allow_headers": settings.cors_allow_headers,
            "allow_credentials": settings.cors_allow_credentials,
            "max_age": settings.cors_max_age,
        }
        listed = sorted(explicit_origins(settings))
        self.general: ASGIApp = CORSMiddleware(
            app,
            allow_origins=settings.cors_allow_origins,
            allow_origin_regex=settings.cors_allow_origin_regex,
            expose_headers=settings.cors_expose_headers,
            **common,
        )
        self.deploy: ASGIApp = (
            CORSMiddleware(app, allow_origins=listed, expose_headers=settings.cors_expose_headers, **common)
            if settings.admin_token and listed
            else app
        )
        regexes = [LOOPBACK_ORIGIN_REGEX, settings.cors_allow_origin_regex]
        self.mcp: ASGIApp = CORSMiddleware(
            app,
            allow_origins=listed,
            allow_origin_regex="|".join(f"(?:{r})" for r in regexes if r),
            expose_headers=[*settings.cors_expose_headers, "Mcp-Session-Id"],
            **common,
        )

    def for_kind(self, kind: RouteKind) -> ASGIApp:
        return self.deploy if kind == "deploy" else self.mcp if kind == "mcp" else self.general
