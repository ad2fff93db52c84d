"""Who may read ``/metrics`` and ``/traces``.

``/metrics`` asks the same API-key question as every serving route (``hayhooks.security``), with
one exception of its own: ``HAYHOOKS_METRICS_PUBLIC``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Optional

from hayhooks.errors import Forbidden, Unauthorized
from hayhooks.security import Caller, is_genuinely_local, require_api_key


def _presented(headers: Mapping[str, str]) -> Optional[str]:
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def metrics_key_ok(settings: Any, headers: Mapping[str, str]) -> None:
    """``/metrics`` needs an API key when keys are configured, unless ``HAYHOOKS_METRICS_PUBLIC``."""
    if settings.metrics_public:
        return
    require_api_key(settings, Caller(headers=headers))


def traces_allowed(settings: Any, caller: Caller) -> None:
    """``/traces`` shows pipeline errors and timings: ``HAYHOOKS_TRACING_TOKEN`` or the admin token,
    or with neither set, a loopback-bound server reached by a genuinely local request (the same
    rule as the deploy routes: no proxy, no rebound ``Host``, no foreign page)."""
    tokens = [t for t in (settings.tracing_token, settings.admin_token) if t]
    if tokens:
        given = _presented(caller.headers)
        if given is None or not any(hmac.compare_digest(given, t) for t in tokens):
            raise Unauthorized(
                "/traces needs 'Authorization: Bearer <HAYHOOKS_TRACING_TOKEN or HAYHOOKS_ADMIN_TOKEN>'"
            )
        return
    if not (settings.bound_to_loopback and is_genuinely_local(caller)):
        raise Forbidden("Set HAYHOOKS_TRACING_TOKEN to read /traces from a server bound to another address")
