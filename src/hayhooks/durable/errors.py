"""Errors of durable runs. HTTP-facing ones are ``HayhooksError``s (status declared here); the
control-flow signals a wrapper's code may see are ``BaseException``s so that a broad
``except Exception`` in user code cannot swallow a suspension or a cancellation."""

from __future__ import annotations

from typing import Any, Optional

from hayhooks.errors import HayhooksError


class ExecutionNotFound(HayhooksError):
    status_code = 404


class ExecutionConflict(HayhooksError):
    """The execution is not in a state that allows this (resume a running one, ...)."""

    status_code = 409


class IdempotencyConflict(HayhooksError):
    """An Idempotency-Key reused for a different request."""

    status_code = 409


class PayloadTooLarge(HayhooksError):
    status_code = 413


class TooManyExecutions(HayhooksError):
    """``durable_max_nonterminal_executions`` reached."""

    status_code = 429
    headers = {"Retry-After": "1"}


class StoreUnavailable(HayhooksError):
    status_code = 503


class LeaseLost(Exception):
    """A write carried a fencing token that is no longer current: another worker owns the execution."""


class ExecutionSuspended(BaseException):
    """Raised by ``DurableContext.suspend``: the execution now waits for ``POST .../resume``."""

    def __init__(self, key: str, reason: str, data: Any = None) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason
        self.data = data


class ExecutionCancelled(BaseException):
    """Raised by ``DurableContext.check_cancelled`` once a cancel was requested."""


class RetryExecution(Exception):
    """Raise (or ``raise context.retry(...)``) to ask for another attempt with backoff, within
    ``durable_max_application_retries``. Any other exception fails the execution."""

    def __init__(self, message: str = "retry requested", delay: Optional[float] = None) -> None:
        super().__init__(message)
        self.delay = delay
