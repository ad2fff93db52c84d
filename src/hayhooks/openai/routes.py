"""OpenAI-compatible routes: translate HTTP ↔ wrapper calls, nothing else.

Every route is registered with and without the ``/v1`` prefix. Wrapper methods run through the one
run path, ``service.run(..., surface="openai")`` (admission, timeout, cancellation, errors); results
are converted by ``hayhooks.openai.convert``. Errors use OpenAI's ``{"error": {...}}`` shape.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, Optional

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from hayhooks.errors import BadRequest, HayhooksError, NotSupported, PipelineRunError
from hayhooks.openai import openapi_docs as docs
from hayhooks.openai.chat import ChatAccumulator
from hayhooks.openai.convert import (
    completion_pieces,
    error_body,
    is_ready_completion,
    is_ready_response,
    new_id,
    plain_text,
    to_plain,
)
from hayhooks.openai.headers import headers_kwarg
from hayhooks.openai.responses import ResponseAccumulator, response_pieces
from hayhooks.pipelines.models import LoadedPipeline
from hayhooks.pipelines.runs import RunStream
from hayhooks.pipelines.wrapper import implemented_method
from hayhooks.server.disconnect import client_gone
from hayhooks.server.responses import event_source
from hayhooks.streaming.messages import normalize_input_items

log = logging.getLogger("hayhooks")

_DONE = {"data": "[DONE]"}


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
def _error_type(status: int) -> tuple[str, str]:
    if status == 404:
        return "invalid_request_error", "model_not_found"
    if status in (401, 403):
        return "authentication_error" if status == 401 else "permission_error", "unauthorized"
    if status < 500:
        return "invalid_request_error", "invalid_request"
    return "server_error", "internal_error"


def error_response(status: int, message: str, code: Optional[str] = None) -> JSONResponse:
    type_, default_code = _error_type(status)
    return JSONResponse(error_body(message, type_, code or default_code), status_code=status)


def not_supported_response(message: str) -> JSONResponse:
    """A model that exists but lacks the method this endpoint needs: 404, as the OpenAI API answers
    a model that does not serve an endpoint. Never a 5xx: the official clients retry those."""
    body = error_body(message, "invalid_request_error", "model_not_supported")
    body["error"]["param"] = "model"
    return JSONResponse(body, status_code=404)


def _from_exception(model: str, exc: BaseException) -> JSONResponse:
    """An error as OpenAI's error shape, with the same message and fields as on the other surfaces
    (the run path already logged run failures; other refusals are logged here, as one line)."""
    if not isinstance(exc, HayhooksError):  # a bug in the route itself
        log.error("OpenAI route for '%s' failed: %r", model, exc, exc_info=exc)
        exc = PipelineRunError.wrap(model, exc)
        exc.logged = True
    if not exc.logged:
        exc.logged = True
        log.log(
            logging.WARNING if exc.status_code >= 500 else logging.INFO,
            "openai: pipeline '%s': %s (%d)",
            model,
            exc.message,
            exc.status_code,
        )
    if isinstance(exc, NotSupported):
        return not_supported_response(exc.message)
    response = error_response(exc.status_code, exc.message)
    fields = _fields(exc)
    if fields or exc.headers:
        body = error_body(exc.message, *_error_type(exc.status_code))
        body["error"].update(fields)
        response = JSONResponse(body, status_code=exc.status_code, headers=exc.headers or None)
    return response


def _fields(exc: HayhooksError) -> dict[str, Any]:
    """The error's context fields (e.g. the failing ``component``), JSON-safe ones only."""
    return {
        k: v
        for k, v in exc.context.items()
        if k != "detail" and (v is None or isinstance(v, (str, int, float, bool)))
    }


def _stream_error(model: str, exc: BaseException) -> dict[str, Any]:
    """The OpenAI error body sent as the last event of a failed stream."""
    if not isinstance(exc, HayhooksError):
        log.error("OpenAI stream of '%s' failed: %r", model, exc, exc_info=exc)
        exc = PipelineRunError.wrap(model, exc)
    type_, code = _error_type(exc.status_code)
    body = error_body(exc.message, type_, code)
    body["error"].update(_fields(exc))
    return body


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON") from None
    except RecursionError:
        raise BadRequest("The request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required: the name of a deployed pipeline")
    return body


# --------------------------------------------------------------------------------------------
# Calling the wrapper and iterating what it returns
# --------------------------------------------------------------------------------------------
class Handlers:
    def __init__(self, service: Any) -> None:
        self.service = service
        # Streams in flight at SIGTERM may finish within the graceful-shutdown timeout.
        self._grace = float(service.settings.graceful_shutdown_timeout)

    async def _run(self, request: Request, name: str, capability: str, **kwargs: Any) -> Any:
        """The one run path (lookup, capability, admission, timeout, cancellation, errors)."""
        if capability in ("chat", "responses"):
            # 2.x passed the request headers to chat / Responses methods that declare ``headers``.
            pipeline = self.service.registry.get(name)
            found = implemented_method(pipeline.wrapper, capability) if pipeline is not None else None
            if pipeline is not None and found is not None:
                kwargs.update(headers_kwarg(pipeline, found[0], request.headers))
        return await self.service.run(
            name,
            capability,
            surface="openai",
            kwargs=kwargs,
            disconnected=functools.partial(client_gone, request),
        )

    def _items(self, result: Any) -> AsyncIterator[Any]:
        """What the wrapper returned, as an async stream of items."""
        if isinstance(result, RunStream):
            return result
        if isinstance(result, (list, tuple)):
            return _aiter_list(result)
        return _aiter_list([result])

    async def _collect(self, model: str, result: Any, acc: Any, answer: Any) -> JSONResponse:
        """A non-streaming answer: feed every item to the accumulator, then answer in one body."""
        items = self._items(result)
        try:
            async for item in items:
                acc.feed(item)
        except Exception as exc:
            return _from_exception(model, exc)
        finally:
            await _aclose(items)
        return JSONResponse(answer())

    # -- GET /models ---------------------------------------------------------------------------------
    async def list_models(self) -> dict[str, Any]:
        data = [
            _model_entry(p)
            for p in self.service.registry.all()
            if implemented_method(p.wrapper, "chat") or implemented_method(p.wrapper, "responses")
        ]
        return {"object": "list", "data": data}

    async def get_model(self, model: str) -> Any:
        pipeline = self.service.registry.get(model)
        if pipeline is None or not (
            implemented_method(pipeline.wrapper, "chat") or implemented_method(pipeline.wrapper, "responses")
        ):
            return error_response(404, f"The model '{model}' does not exist")
        return _model_entry(pipeline)

    # -- POST /chat/completions ----------------------------------------------------------------------
    async def chat_completions(self, request: Request) -> Any:
        model = "?"
        try:
            body = await _json_body(request)
            model = body["model"]
            messages = body.get("messages")
            if not isinstance(messages, list):
                raise BadRequest("'messages' is required: a list of chat messages")
            result = await self._run(request, model, "chat", model=model, messages=messages, body=body)
        except Exception as exc:
            return _from_exception(model, exc)

        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
        acc = ChatAccumulator(model, include_usage=include_usage)
        if body.get("stream"):
            return event_source(self._chat_events(model, result, acc), self._grace)
        if is_ready_completion(result):
            return JSONResponse(to_plain(result))
        return await self._collect(model, result, acc, acc.completion)

    async def _chat_events(self, model: str, result: Any, acc: ChatAccumulator) -> AsyncIterator[Any]:
        items = None if is_ready_completion(result) else self._items(result)
        try:
            for payload in acc.start():
                yield {"data": json.dumps(payload)}
            if items is None:
                payloads = acc.feed_pieces(completion_pieces(result))
                for payload in payloads:
                    yield {"data": json.dumps(payload)}
            else:
                async for item in items:
                    text = plain_text(item)
                    if (
                        text is not None
                    ):  # the hot path: one token, pre-encoded (sse-starlette passes bytes on)
                        yield acc.text_event(text)
                        continue
                    for payload in acc.feed(item):
                        yield {"data": json.dumps(payload)}
        except Exception as exc:
            yield {"data": json.dumps(_stream_error(model, exc))}
            yield _DONE
            return
        finally:
            await _aclose(items)
        for payload in acc.finish():
            yield {"data": json.dumps(payload)}
        yield _DONE

    # -- POST /responses -----------------------------------------------------------------------------
    async def responses(self, request: Request) -> Any:
        model = "?"
        try:
            body = await _json_body(request)
            model = body["model"]
            try:
                input_items = normalize_input_items(body.get("input"))
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            result = await self._run(
                request, model, "responses", model=model, input_items=input_items, body=body
            )
        except Exception as exc:
            return _from_exception(model, exc)

        acc = ResponseAccumulator(model, body)
        if body.get("stream"):
            return event_source(self._response_events(model, result, acc), self._grace)
        if is_ready_response(result):
            return JSONResponse(to_plain(result))
        return await self._collect(model, result, acc, acc.final)

    async def _response_events(
        self, model: str, result: Any, acc: ResponseAccumulator
    ) -> AsyncIterator[dict[str, Any]]:
        def sse(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
            return [{"event": name, "data": json.dumps(data)} for name, data in events]

        items = None if is_ready_response(result) else self._items(result)
        try:
            for message in sse(acc.start()):
                yield message
            if items is None:
                for message in sse(acc.feed_pieces(response_pieces(result))):
                    yield message
            else:
                async for item in items:
                    for message in sse(acc.feed(item)):
                        yield message
        except Exception as exc:
            error = exc if isinstance(exc, HayhooksError) else PipelineRunError.wrap(model, exc)
            if error is not exc:
                log.error("Response stream of '%s' failed: %r", model, exc, exc_info=exc)
            for message in sse(acc.fail(error.message)):
                yield message
            yield _DONE
            return
        finally:
            await _aclose(items)
        for message in sse(acc.finish()):
            yield message

    # -- POST /files ---------------------------------------------------------------------------------
    async def files(self, request: Request) -> Any:
        model = request.query_params.get("model") or "?"
        try:
            try:
                form = await request.form()
            except Exception:
                raise BadRequest("Expected a multipart/form-data body with a 'file' field") from None
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise BadRequest("'file' is required: the file to upload")
            purpose = form.get("purpose")
            purpose = purpose if isinstance(purpose, str) and purpose else "user_data"
            name = form.get("model") or request.query_params.get("model")
            model = self._file_pipeline(name if isinstance(name, str) else None)
            content = await upload.read()
            filename = upload.filename or "upload"
            content_type = upload.content_type or "application/octet-stream"
            result = await self._run(
                request,
                model,
                "files",
                filename=filename,
                content_type=content_type,
                content=content,
                purpose=purpose,
            )
        except Exception as exc:
            return _from_exception(model, exc)
        return JSONResponse(_file_object(result, filename, len(content), purpose))

    def _file_pipeline(self, name: Optional[str]) -> str:
        """The pipeline a file upload goes to: the one named, or the only one accepting files."""
        if name:
            return name
        accepting = [p for p in self.service.registry.all() if implemented_method(p.wrapper, "files")]
        if not accepting:
            raise NotSupported("No deployed pipeline accepts file uploads (none implements run_file_upload)")
        if len(accepting) > 1:
            names = ", ".join(p.name for p in accepting)
            raise BadRequest(
                f"Several pipelines accept files ({names}): name one with the 'model' form field or ?model="
            )
        return accepting[0].name


async def _aclose(items: Any) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


async def _aiter_list(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _model_entry(pipeline: LoadedPipeline) -> dict[str, Any]:
    return {
        "id": pipeline.name,
        "object": "model",
        "created": int(pipeline.loaded_at),
        "owned_by": "hayhooks",
    }


def _file_object(result: Any, filename: str, size: int, purpose: str) -> dict[str, Any]:
    import time

    result = to_plain(result)
    base: dict[str, Any] = {
        "id": new_id("file-"),
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
    }
    if isinstance(result, str) and result:
        base["id"] = result
    elif isinstance(result, dict):
        base.update({k: v for k, v in result.items() if v is not None})
        base["object"] = "file"
    return base


def install_routes(app: FastAPI, service: Any) -> None:
    handlers = Handlers(service)
    router = APIRouter(tags=["openai"])
    for prefix in ("/v1", ""):
        router.add_api_route(f"{prefix}/models", handlers.list_models, methods=["GET"], summary="List models")
        router.add_api_route(
            f"{prefix}/models/{{model}}",
            handlers.get_model,
            methods=["GET"],
            summary="Retrieve a model",
            **docs.GET_MODEL,
        )
        router.add_api_route(
            f"{prefix}/chat/completions",
            handlers.chat_completions,
            methods=["POST"],
            summary="Chat completion (OpenAI-compatible)",
            **docs.CHAT_COMPLETIONS,
        )
        router.add_api_route(
            f"{prefix}/responses",
            handlers.responses,
            methods=["POST"],
            summary="Create a response (OpenAI Responses API)",
            **docs.RESPONSES,
        )
        router.add_api_route(
            f"{prefix}/files", handlers.files, methods=["POST"], summary="Upload a file", **docs.FILES
        )
    app.include_router(router)
