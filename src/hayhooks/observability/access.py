"""Who may read ``/metrics`` and ``/traces``.

``metrics_key_ok`` is the one place the metrics route asks about API keys; when the server's API
keys land (``HAYHOOKS_API_KEYS``, decided in ``hayhooks/security.py``) it should call that check.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Optional

from hayhooks.errors import Forbidden, Unauthorized
from hayhooks.settings import is_loopback


def _presented(headers: Mapping[str, str]) -> Optional[str]:
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def _configured_keys(settings: Any) -> list[str]:
    keys = getattr(settings, "api_keys", None)
    if not keys:
        return []
    if isinstance(keys, str):
        return [k.strip() for k in keys.split(",") if k.strip()]
    return [str(getattr(k, "get_secret_value", lambda k=k: k)()) for k in keys]


def metrics_key_ok(settings: Any, headers: Mapping[str, str]) -> None:
    """``/metrics`` needs an API key when keys are configured, unless ``HAYHOOKS_METRICS_PUBLIC``."""
    keys = _configured_keys(settings)
    if not keys or settings.metrics_public:
        return
    given = _presented(headers)
    if given is None or not any(hmac.compare_digest(given, key) for key in keys):
        raise Unauthorized("/metrics needs an API key (or set HAYHOOKS_METRICS_PUBLIC=true)")


def traces_allowed(settings: Any, headers: Mapping[str, str], local_address: Optional[str]) -> None:
    """``/traces`` shows pipeline errors and timings: ``HAYHOOKS_TRACING_TOKEN`` or the admin token,
    or with neither set, a loopback-bound server reached locally (like the deploy routes)."""
    tokens = [t for t in (settings.tracing_token, settings.admin_token) if t]
    if tokens:
        given = _presented(headers)
        if given is None or not any(hmac.compare_digest(given, t) for t in tokens):
            raise Unauthorized(
                "/traces needs 'Authorization: Bearer <HAYHOOKS_TRACING_TOKEN or HAYHOOKS_ADMIN_TOKEN>'"
            )
        return
    if not (settings.bound_to_loopback and (local_address is None or is_loopback(local_address))):
        raise Forbidden("Set HAYHOOKS_TRACING_TOKEN to read /traces from a server bound to another address")
