"""Request headers for chat / Responses wrapper methods that ask for them (as in Hayhooks 2.x).

A ``run_chat_completion`` / ``run_response`` (or async) that declares a ``headers`` parameter, or
``**kwargs``, receives the request headers as a dict, e.g. to forward ``Authorization`` to a model
server; methods written without it are called exactly as before.
"""

from __future__ import annotations

import inspect
from typing import Any

from hayhooks.pipelines.models import LoadedPipeline


def accepts_headers(method: Any) -> bool:
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return "headers" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def headers_kwarg(pipeline: LoadedPipeline, method_name: str, headers: Any) -> dict[str, Any]:
    """``{"headers": {...}}`` when the wrapper method opts in, else ``{}`` (decided once per load)."""
    key = f"openai.headers.{method_name}"
    wanted = pipeline.extra.get(key)
    if wanted is None:
        wanted = pipeline.extra[key] = accepts_headers(getattr(pipeline.wrapper, method_name))
    return {"headers": dict(headers)} if wanted else {}
