"""The one exception root. Each error declares its HTTP status; the server maps them in one handler.

The domain layer raises these and never imports FastAPI.
"""

from __future__ import annotations

from typing import Any


class HayhooksError(Exception):
    status_code: int = 500
    headers: dict[str, str] = {}

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class BadRequest(HayhooksError):
    status_code = 400


class InvalidInput(HayhooksError):
    status_code = 422


class PipelineLoadError(HayhooksError):
    """A pipeline folder or YAML that could not be loaded (syntax error, setup() raised, ...)."""

    status_code = 422


class PipelineNotFound(HayhooksError):
    status_code = 404


class PipelineExists(HayhooksError):
    status_code = 409


class NotSupported(HayhooksError):
    """The pipeline exists but does not implement what was asked (e.g. no chat method)."""

    status_code = 501


class PipelineRunError(HayhooksError):
    status_code = 500

    @classmethod
    def wrap(cls, pipeline: str, exc: BaseException) -> PipelineRunError:
        """A wrapper's exception as a 500 that keeps Haystack's context (which component failed)."""
        component = getattr(exc, "component_name", None)
        where = f" in component '{component}'" if component else ""
        error = cls(f"Pipeline '{pipeline}' failed{where}: {type(exc).__name__}: {exc}")
        if component:
            error.context["component"] = component
        error.__cause__ = exc
        return error


class Overloaded(HayhooksError):
    """More sync runs waiting than the worker accepts: better a quick 503 than unbounded latency."""

    status_code = 503
    headers = {"Retry-After": "1"}


class Unauthorized(HayhooksError):
    status_code = 401


class Forbidden(HayhooksError):
    status_code = 403


class StoreUnavailable(HayhooksError):
    """The pipelines directory cannot be written (read-only, full, permissions)."""

    status_code = 503
    headers = {"Retry-After": "5"}


class SyncTimeout(HayhooksError):
    """A change was committed but not every live worker confirmed serving it in time."""

    status_code = 504
