"""``hayhooks execution ...``: start, list, inspect, cancel, resume and follow durable executions."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Annotated, Any, Optional
from urllib.parse import quote

import httpx
import typer

from hayhooks.cli.client import HayhooksClient, error_from_response
from hayhooks.cli.common import TokenOption, UrlOption, make_client
from hayhooks.cli.inputs import parse_params
from hayhooks.cli.output import EXIT_ERROR, fail, handle_errors, print_result, write_chunk

execution_app = typer.Typer(
    name="execution",
    help="Durable executions (POST /{name}/run-durable): start, list, get, cancel, resume, follow.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Name of the pipeline.", show_default=False)]
IdArg = Annotated[str, typer.Argument(metavar="EXECUTION_ID", help="The execution id.", show_default=False)]
ParamOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--param",
        "-p",
        metavar="KEY=VALUE",
        help="A request field; VALUE is JSON when it parses, else a string. Repeatable.",
        show_default=False,
    ),
]
JsonOption = Annotated[
    Optional[str], typer.Option("--json", "-j", help="The whole request body as JSON.", show_default=False)
]
_TERMINAL = ("completed", "failed", "canceled")
_RECONNECTS = 20


def _path(name: str, *rest: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in (name, *rest))


def _body(param: Optional[list[str]], body: Optional[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if body:
        try:
            loaded = json.loads(body)
        except ValueError as exc:
            fail(f"--json is not valid JSON: {exc}")
        if not isinstance(loaded, dict):
            fail("--json must be a JSON object")
        data.update(loaded)
    data.update(parse_params(param or []))
    return data


@execution_app.command("run")
def run(
    name: NameArg,
    param: ParamOption = None,
    body: JsonOption = None,
    idempotency_key: Annotated[
        Optional[str],
        typer.Option("--idempotency-key", "-k", help="Retries with this key return the same execution."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-F", help="Stream its progress until it finishes.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Start a durable execution and print it (or follow it with --follow)."""
    with handle_errors():
        payload = _body(param, body)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        with make_client(url, token) as client:
            view = client._request("POST", _path(name, "run-durable"), json=payload, headers=headers)
            if not follow:
                print_result(view)
                return
            sys.stderr.write(f"execution {view['execution_id']}\n")
            _follow(client, name, view["execution_id"], 0)


@execution_app.command("list")
def list_executions(
    name: NameArg,
    status: Annotated[Optional[str], typer.Option("--status", help="Only executions in this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Page size.")] = 50,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many (newest first).")] = 0,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List a pipeline's executions, newest first."""
    with handle_errors():
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        with make_client(url, token) as client:
            page = client._request("GET", _path(name, "executions"), params=params)
    for view in page["executions"]:
        progress = (view.get("progress") or {}).get("message") or ""
        sys.stdout.write(
            f"{view['execution_id']}  {view['status']:<9}  attempt {view['attempt']}  "
            f"{view['created_at']}  {progress}\n"
        )
    sys.stdout.write(f"{len(page['executions'])} of {page['total']}\n")


@execution_app.command("get")
def get(name: NameArg, execution_id: IdArg, url: UrlOption = None, token: TokenOption = None) -> None:
    """Print one execution (status, progress, result, error, waiting)."""
    with handle_errors(), make_client(url, token) as client:
        print_result(client._request("GET", _path(name, "executions", execution_id)))


@execution_app.command("cancel")
def cancel(name: NameArg, execution_id: IdArg, url: UrlOption = None, token: TokenOption = None) -> None:
    """Cancel an execution (a running one stops at its next step boundary)."""
    with handle_errors(), make_client(url, token) as client:
        print_result(client._request("POST", _path(name, "executions", execution_id, "cancel")))


@execution_app.command("resume")
def resume(
    name: NameArg,
    execution_id: IdArg,
    param: ParamOption = None,
    body: JsonOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Resume a waiting execution with the input it waits for."""
    with handle_errors(), make_client(url, token) as client:
        payload = _body(param, body)
        print_result(client._request("POST", _path(name, "executions", execution_id, "resume"), json=payload))


@execution_app.command("follow")
def follow(
    name: NameArg,
    execution_id: IdArg,
    last_event_id: Annotated[int, typer.Option("--last-event-id", help="Only events after this id.")] = 0,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Print an execution's stream (chunks on stdout, progress on stderr) until it finishes;
    reconnects with Last-Event-ID if the connection drops."""
    with handle_errors(), make_client(url, token) as client:
        _follow(client, name, execution_id, last_event_id)


def _follow(client: HayhooksClient, name: str, execution_id: str, last: int) -> None:
    path = _path(name, "executions", execution_id, "stream")
    status = None
    open_line = False
    for attempt in range(_RECONNECTS):
        try:
            for event_id, kind, data in _events(client, path, last):
                last = event_id
                if kind == "chunk":
                    text = data if isinstance(data, str) else json.dumps(data) + "\n"
                    write_chunk(text)
                    open_line = bool(text) and not text.endswith("\n")
                elif kind == "progress":
                    message = data.get("message") if isinstance(data, dict) else data
                    sys.stderr.write(f"[progress] {message if message is not None else json.dumps(data)}\n")
                elif kind == "status":
                    status = data.get("status")
                    sys.stderr.write(f"[status] {status}\n")
            break
        except httpx.TransportError:
            time.sleep(min(5.0, 0.2 * 2**attempt))
    if open_line:
        write_chunk("\n")
    view = client._request("GET", _path(name, "executions", execution_id))
    if view["status"] == "completed":
        print_result(view["result"])
    elif view["status"] in ("failed", "canceled"):
        error = view.get("error") or {}
        fail(
            f"Execution {execution_id} {view['status']}: {error.get('message', '')}".rstrip(": "), EXIT_ERROR
        )
    else:
        print_result(view)


def _events(client: HayhooksClient, path: str, last: int) -> Iterator[tuple[int, str, Any]]:
    headers = {"Last-Event-ID": str(last)} if last else {}
    with client._http.stream(
        "GET", path, headers=headers, timeout=httpx.Timeout(None, connect=10)
    ) as response:
        if response.is_error:
            response.read()
            raise error_from_response(response)
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if not line:
                if "id" in fields and "data" in fields:
                    yield int(fields["id"]), fields.get("event", "message"), json.loads(fields["data"])
                fields = {}
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value
