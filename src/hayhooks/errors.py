"""The one exception root. Each error declares its HTTP status; the server maps them in one handler.

The domain layer raises these and never imports FastAPI.
"""

from __future__ import annotations

from typing import Any, Optional


class HayhooksError(Exception):
    status_code: int = 500
    headers: dict[str, str] = {}
    # Whether this is an expected refusal (logged as one line, never a traceback); None: every 4xx.
    refusal: Optional[bool] = None

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        # Set once the error was logged (by the run path), so no other layer logs it again.
        self.logged = False

    @property
    def expected(self) -> bool:
        return self.refusal if self.refusal is not None else self.status_code < 500


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
    refusal = True


class Unauthorized(HayhooksError):
    status_code = 401


class Forbidden(HayhooksError):
    status_code = 403


class StoreUnavailable(HayhooksError):
    """The pipelines directory cannot be written (read-only, full, permissions)."""

    status_code = 503
    headers = {"Retry-After": "5"}


class ChangeSuperseded(HayhooksError):
    """A change was committed, but another change of the same pipeline (a concurrent deploy, maybe
    through another instance) replaced it before every worker served it: the later one is served."""

    status_code = 409


class SyncTimeout(HayhooksError):
    """A change was committed but not every live worker confirmed serving it in time."""

    status_code = 504


# -- runs (runtime) ----------------------------------------------------------------------------------
class RunTimeout(HayhooksError):
    """A run took longer than its timeout (``HAYHOOKS_REQUEST_TIMEOUT`` or the wrapper's
    ``request_timeout``). Distinct from ``SyncTimeout``, which is about deploys."""

    status_code = 504
    refusal = True


class ClientDisconnected(HayhooksError):
    """The client went away before the run finished; nobody reads this answer (499, as nginx logs it)."""

    status_code = 499
    refusal = True


class WrapperRefused(HayhooksError):
    """An HTTP error a wrapper raised on purpose (e.g. FastAPI's ``HTTPException``): its status,
    detail and headers are kept, on every surface."""

    def __init__(self, status_code: int, detail: Any, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(detail if isinstance(detail, str) else f"HTTP {status_code}", detail=detail)
        self.status_code = status_code
        self.headers = dict(headers or {})

    @classmethod
    def from_exception(cls, exc: BaseException) -> Optional[WrapperRefused]:
        """The refusal an ``HTTPException``-like exception (int ``status_code`` and ``detail``) means."""
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and 400 <= status < 600 and hasattr(exc, "detail"):
            refused = cls(status, exc.detail, getattr(exc, "headers", None))
            refused.__cause__ = exc
            return refused
        return None
