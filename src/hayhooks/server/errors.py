"""One handler maps every error to JSON ``{"detail": ...}`` with the status the error declares."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hayhooks.errors import HayhooksError
from hayhooks.observability.context import current_request_id

log = logging.getLogger("hayhooks")


def install_error_handlers(app: FastAPI, show_tracebacks: bool) -> None:
    def body(exc: BaseException, detail: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"detail": detail, **(extra or {})}
        request_id = current_request_id()
        if request_id is not None:
            out["request_id"] = request_id
        if show_tracebacks:
            cause = exc.__cause__ or exc
            out["traceback"] = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
        return out

    @app.exception_handler(HayhooksError)
    async def _hayhooks_error(request: Request, exc: HayhooksError) -> JSONResponse:
        if not exc.logged:  # the run path logs its own failures, once
            exc.logged = True
            if exc.expected:  # a refusal (4xx, 503 overload, 504 timeout): one line, no traceback
                log.log(
                    logging.WARNING if exc.status_code >= 500 else logging.INFO,
                    "%s %s -> %d %s",
                    request.method,
                    request.url.path,
                    exc.status_code,
                    exc.message,
                )
            else:
                log.error(
                    "%s %s -> %s",
                    request.method,
                    request.url.path,
                    exc.message,
                    exc_info=exc.__cause__ or exc,
                )
        extra = dict(exc.context)
        detail = extra.pop("detail", exc.message)
        return JSONResponse(
            body(exc, detail, extra), status_code=exc.status_code, headers=exc.headers or None
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(body(exc, f"Internal server error: {type(exc).__name__}: {exc}"), status_code=500)
