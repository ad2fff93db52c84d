"""OpenAI-compatible API over the pipeline service: ``/v1/models``, ``/v1/chat/completions``,
``/v1/responses``, ``/v1/files`` (each also without ``/v1``).

``create_app`` calls ``install(app, service)``; see ``docs/openai.md``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from hayhooks.openai.routes import install_routes

__all__ = ["install"]


def install(app: FastAPI, service: Any) -> None:
    """Register the OpenAI-compatible routes on ``app``; they use ``service.registry`` / ``.executor``."""
    install_routes(app, service)
    return None
