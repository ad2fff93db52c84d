"""Console output of the CLI: results on stdout, progress and errors on stderr.

Data that comes from users or pipelines is never parsed as rich markup. When stdout is not a
terminal, results are plain text / plain JSON so they can be piped into other tools.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hayhooks.cli.client import ClientError, ServerError, ServerUnreachable

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

# Exit codes: 1 = the server could not be reached or answered with an error; 2 = bad local input.
EXIT_ERROR = 1
EXIT_INPUT = 2

DISABLED_HINT = (
    "Hint: this server has runtime deploys turned off, so no token helps. Put the pipeline in the "
    "server's pipelines directory instead; every worker picks it up on its own."
)
AUTH_HINT = (
    "Hint: deploy routes need the server's admin token. Set HAYHOOKS_ADMIN_TOKEN (or pass --token) "
    "to the token the server was started with; without a token the server only accepts deploys "
    "from loopback clients."
)
API_KEY_HINT = (
    "Hint: the server asks for an API key. Set HAYHOOKS_API_KEYS (the first key is sent as X-API-Key) "
    "or HAYHOOKS_ADMIN_TOKEN."
)


def fail(message: str, code: int = EXIT_ERROR, hint: Optional[str] = None) -> NoReturn:
    err_console.print(Text.assemble(("Error: ", "bold red"), message), soft_wrap=True)
    if hint:
        err_console.print(Text(hint, style="yellow"), soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err_console.print(Text.assemble(("Warning: ", "bold yellow"), message), soft_wrap=True)


@contextmanager
def handle_errors(auth_hint: bool = False) -> Iterator[None]:
    """Turn client errors into one readable message on stderr and a non-zero exit code."""
    from hayhooks.cli.inputs import InputError

    try:
        yield
    except InputError as exc:
        fail(str(exc), EXIT_INPUT)
    except ServerUnreachable as exc:
        fail(str(exc), EXIT_ERROR)
    except ServerError as exc:
        hint = None
        if auth_hint and exc.is_auth_error and "HAYHOOKS_DISABLE_RUNTIME_DEPLOY" in exc.detail:
            hint = DISABLED_HINT
        elif auth_hint and exc.is_auth_error:
            hint = AUTH_HINT
        elif exc.status_code == 401:
            hint = API_KEY_HINT
        elif auth_hint and exc.status_code == 409:
            hint = "Hint: pass --overwrite to replace the deployed pipeline."
        elif exc.status_code == 504 and isinstance(exc.body, dict) and exc.body.get("result"):
            hint = "The change is committed; the lagging workers pick it up when they next sync."
        fail(str(exc), EXIT_ERROR, hint=hint)
    except ClientError as exc:
        fail(str(exc), EXIT_ERROR)


@contextmanager
def progress(message: str) -> Iterator[Any]:
    """A spinner on stderr while waiting (only drawn on a terminal; silent otherwise)."""
    with err_console.status(Text(message), spinner="dots") as status:
        yield status


def print_result(value: Any) -> None:
    """A run result: strings as plain text, anything else as (pretty) JSON."""
    if isinstance(value, str):
        _write(value if value.endswith("\n") else value + "\n")
        return
    if console.is_terminal:
        console.print_json(data=value, default=str)
    else:
        _write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def write_chunk(text: str) -> None:
    _write(text)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _join(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, set)):
        return ", ".join(str(v) for v in value)
    return str(value)


def confirmation(action: str, name: str, body: Any) -> None:
    """One line confirming a deploy / undeploy, with the generation, worker sync and any warning.

    The server answers ``{"success", "name", "action", "generation", "workers", "lagging", "saved"}``;
    every field but ``name`` is treated as optional.
    """
    extras: list[str] = []
    warnings: list[str] = []
    if isinstance(body, dict):
        name = str(body.get("name") or name)
        if isinstance(body.get("action"), str) and body["action"]:
            action = body["action"]
        if body.get("generation") is not None:
            extras.append(f"generation {body['generation']}")
        workers = body.get("workers")
        lagging = body.get("lagging") or []
        if isinstance(workers, list):
            workers = len(workers)
        if isinstance(workers, int) and not isinstance(workers, bool):
            serving = max(workers - len(lagging), 0) if isinstance(lagging, list) else workers
            extras.append(f"{serving}/{workers} worker(s) in sync")
        if lagging:
            warnings.append(
                f"not every worker confirmed the change in time (lagging: {_join(lagging)}); "
                "they will pick it up shortly."
            )
        if body.get("saved") is False and action != "undeployed":
            extras.append("not saved: gone when the server restarts")
        for key in ("warning", "warnings"):
            value = body.get(key)
            if value:
                warnings.extend(value if isinstance(value, list) else [value])
        if body.get("success") is False:
            warnings.append(
                str(body.get("message") or body.get("detail") or "the server reported no success")
            )
    line = Text.assemble(("✔ ", "bold green"), f"Pipeline '{name}' {action}")
    if extras:
        line.append(f" ({'; '.join(extras)})", style="dim")
    console.print(line, soft_wrap=True)
    for warning in warnings:
        warn(str(warning))


def _cell(value: Any) -> Text:
    return Text(_join(value))


def status_view(base_url: str, status: dict[str, Any]) -> None:
    """Render ``GET /status``: a headline, the pipelines, the failed ones and the workers."""
    headline = Text.assemble(
        ("Hayhooks server at ", "bold"),
        (base_url, "bold cyan"),
        (f": {status.get('status', 'unknown')}", "bold green"),
    )
    facts = []
    if status.get("generation") is not None:
        facts.append(f"generation {status['generation']}")
    workers = status.get("workers")
    if isinstance(workers, list):
        facts.append(f"{len(workers)} worker(s)")
    if facts:
        headline.append(f" ({', '.join(facts)})", style="dim")
    console.print(headline, soft_wrap=True)

    details = status.get("details")
    names = status.get("pipelines") or []
    rows: list[dict[str, Any]]
    if isinstance(details, list) and details:
        rows = [d if isinstance(d, dict) else {"name": d} for d in details]
    else:
        rows = [{"name": n} for n in names]

    if rows:
        table = Table(title=f"Pipelines ({len(rows)})", title_justify="left", expand=False)
        table.add_column("Name", style="bold cyan", no_wrap=True)
        columns = [
            ("type", "Type"),
            ("capabilities", "Capabilities"),
            ("origin", "Origin"),
            ("description", "Description"),
            ("source", "Source"),
        ]
        shown = [
            (key, title) for key, title in columns if any(r.get(key) not in (None, "", []) for r in rows)
        ]
        for _key, title in shown:
            table.add_column(title, overflow="fold")
        for row in rows:
            table.add_row(_cell(row.get("name")), *[_cell(row.get(key)) for key, _ in shown])
        console.print(table)
    else:
        console.print("No pipelines deployed.")

    failed = status.get("failed") or []
    if failed:
        console.print(Text(f"Failed pipelines ({len(failed)})", style="bold red"))
        for item in failed:
            if not isinstance(item, dict):
                item = {"name": str(item)}
            source = item.get("source")
            console.print(
                Panel(
                    Text(str(item.get("error") or "(no error message)")),
                    title=Text(str(item.get("name", "?")), style="bold red"),
                    title_align="left",
                    subtitle=Text(str(source)) if source else None,
                    subtitle_align="left",
                    border_style="red",
                )
            )

    if isinstance(workers, list) and workers and all(isinstance(w, dict) for w in workers):
        keys: list[str] = []
        for worker in workers:
            keys.extend(k for k in worker if k not in keys)
        table = Table(title=f"Workers ({len(workers)})", title_justify="left")
        for key in keys:
            table.add_column(escape(key.replace("_", " ").capitalize()), overflow="fold")
        for worker in workers:
            table.add_row(*[_cell(worker.get(k)) for k in keys])
        console.print(table)
