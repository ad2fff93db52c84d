"""``hayhooks pipeline ...``: deploy, undeploy and run pipelines on a running server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hayhooks.cli.client import ServerError
from hayhooks.cli.common import TokenOption, UrlOption, ignore_rules, make_client
from hayhooks.cli.inputs import collect_pipeline_files, collect_upload_files, parse_params
from hayhooks.cli.output import (
    EXIT_ERROR,
    confirmation,
    fail,
    handle_errors,
    print_result,
    progress,
    warn,
    write_chunk,
)

pipeline_app = typer.Typer(
    name="pipeline",
    help="Deploy, undeploy and run pipelines on a running Hayhooks server.",
    no_args_is_help=True,
)


# -- deploy-files --------------------------------------------------------------------------------


@pipeline_app.command("deploy-files")
def deploy_files(
    pipeline_dir: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            help="Folder with pipeline_wrapper.py and any other files it needs.",
            show_default=False,
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Name of the pipeline.", show_default=False)],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", "-o", help="Replace a pipeline that already has this name.")
    ] = False,
    skip_saving_files: Annotated[
        bool,
        typer.Option(
            "--skip-saving-files",
            "-s",
            help="Deploy without keeping the files in the server's pipelines dir (gone on restart).",
        ),
    ] = False,
    description: Annotated[
        Optional[str],
        typer.Option(
            "--description",
            help="Description shown in status, OpenAPI and MCP (default: the run_api docstring).",
            show_default=False,
        ),
    ] = None,
    skip_mcp: Annotated[
        bool,
        typer.Option("--skip-mcp", help="Keep this pipeline out of the MCP tools."),
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Deploy a pipeline wrapper folder (every text file in DIR, recursively, except those matched
    by HAYHOOKS_FILES_TO_IGNORE_PATTERNS)."""
    with handle_errors(auth_hint=True):
        files = collect_pipeline_files(pipeline_dir, ignore_rules())
        with make_client(url, token) as client, progress(f"Deploying '{name}' ({len(files)} files)..."):
            body = client.deploy_files(
                name,
                files,
                overwrite=overwrite,
                save_files=not skip_saving_files,
                description=description,
                skip_mcp=skip_mcp,
            )
    confirmation("deployed", name, body)


# -- deploy-yaml ---------------------------------------------------------------------------------


def deploy_yaml_command(
    yaml_file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="Pipeline YAML (Pipeline.dumps() with inputs/outputs).", show_default=False
        ),
    ],
    name: Annotated[
        Optional[str],
        typer.Option(
            "--name",
            "-n",
            help="Name of the pipeline. Default: the file name without extension.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", "-o", help="Replace a pipeline that already has this name.")
    ] = False,
    description: Annotated[
        Optional[str],
        typer.Option(
            "--description",
            help="Description shown in status, OpenAPI and MCP; wins over a description: in the YAML.",
            show_default=False,
        ),
    ] = None,
    save_file: Annotated[
        bool,
        typer.Option(
            "--save-file/--no-save-file",
            help="Keep the YAML in the server's pipelines dir (--no-save-file: gone on restart).",
        ),
    ] = True,
    skip_mcp: Annotated[
        bool,
        typer.Option("--skip-mcp", help="Keep this pipeline out of the MCP tools."),
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Deploy a pipeline from a YAML file."""
    pipeline_name = name or yaml_file.stem
    with handle_errors(auth_hint=True):
        source_code = _read_yaml(yaml_file)
        with make_client(url, token) as client, progress(f"Deploying '{pipeline_name}'..."):
            body = client.deploy_yaml(
                pipeline_name,
                source_code,
                overwrite=overwrite,
                description=description,
                save_file=save_file,
                skip_mcp=skip_mcp,
            )
    confirmation("deployed", pipeline_name, body)


def _read_yaml(path: Path) -> str:
    from hayhooks.cli.inputs import InputError

    if not path.exists():
        raise InputError(f"YAML file not found: {path}")
    if not path.is_file():
        raise InputError(f"Not a file: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text.") from None
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror or exc}") from None


pipeline_app.command("deploy-yaml")(deploy_yaml_command)
# 2.1 kept `pipeline deploy` only to say it was removed; deploying the YAML is what its users meant.
pipeline_app.command("deploy", hidden=True, help="Same as `pipeline deploy-yaml`.")(deploy_yaml_command)


# -- undeploy ------------------------------------------------------------------------------------


@pipeline_app.command("undeploy")
def undeploy(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Name of the pipeline to remove.", show_default=False)
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Succeed even when no pipeline has this name.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Undeploy a pipeline (its routes go away and its saved files are archived by the server)."""
    with handle_errors(auth_hint=True):
        try:
            with make_client(url, token) as client, progress(f"Undeploying '{name}'..."):
                body = client.undeploy(name)
        except ServerError as exc:
            if force and exc.status_code == 404:
                warn(f"{exc.detail} (nothing to undeploy)")
                return
            raise
    confirmation("undeployed", name, body)


# -- history and rollback ------------------------------------------------------------------------


@pipeline_app.command("history")
def history(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name of the pipeline.", show_default=False)],
    json_output: Annotated[bool, typer.Option("--json", help="Print the server's JSON answer.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List the deployed version and the archived ones (newest first) that a rollback can restore."""
    with handle_errors(auth_hint=True):
        with make_client(url, token) as client:
            body = client.history(name)
    if json_output:
        print_result(body)
        return
    versions = body.get("versions", []) if isinstance(body, dict) else []
    lines = [f"{'VERSION':<26} {'ACTION':<12} {'GENERATION':>10}  {'ORIGIN':<9} AT (UTC)"]
    for v in versions:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(v.get("at", 0))))
        action = "deployed" if v.get("current") else str(v.get("action", ""))
        generation = "" if v.get("current") else str(v.get("generation", ""))
        lines.append(
            f"{v.get('version', ''):<26} {action:<12} {generation:>10}  {v.get('origin', ''):<9} {at}"
        )
    print_result("\n".join(lines))


@pipeline_app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name of the pipeline.", show_default=False)],
    to: Annotated[
        Optional[str],
        typer.Option(
            "--to", metavar="VERSION", help="Archived version to restore (default: the newest one)."
        ),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Deploy an archived version again; succeeds only once every worker serves it."""
    with handle_errors(auth_hint=True):
        with make_client(url, token) as client, progress(f"Rolling back '{name}'..."):
            body = client.rollback(name, to)
    confirmation("rolled back", name, body)


# -- run -----------------------------------------------------------------------------------------


@pipeline_app.command("run")
def run_pipeline(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Name of the deployed pipeline.", show_default=False)
    ],
    param: Annotated[
        Optional[list[str]],
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help='A run argument; VALUE is JSON when it parses (3, true, ["a"], {"k": 1}), '
            "else a string. Repeatable.",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        Optional[list[Path]],
        typer.Option("--file", "-f", help="A file to upload (multipart). Repeatable.", show_default=False),
    ] = None,
    directory: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--dir",
            "-d",
            help="Upload every file in this folder, recursively. Repeatable.",
            show_default=False,
        ),
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", "-s", help="Print the answer as it arrives (streaming pipelines).")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Run a deployed pipeline and print its result."""
    with handle_errors():
        params = parse_params(param or [])
        uploads = collect_upload_files(file or [], directory or [])
        with make_client(url, token) as client:
            if stream:
                _run_streaming(client, name, params, uploads)
                return
            with progress(f"Running '{name}'..."):
                body = client.run(name, params, uploads)
    print_result(body["result"] if isinstance(body, dict) and "result" in body else body)


def _run_streaming(client: Any, name: str, params: dict[str, Any], uploads: list[Any]) -> None:
    """Print a streamed answer as it arrives: text chunks as they are, SSE ``data`` payloads in turn.

    Payloads that are JSON objects / arrays go on their own line; text payloads (tokens) are joined.
    """
    at_line_start = True
    with progress(f"Running '{name}'...") as status:
        for event in client.run_stream(name, params, uploads):
            if status is not None:  # first byte arrived: the spinner has done its job
                status.stop()
                status = None
            if event.event == "result":  # the pipeline answered with plain JSON, not a stream
                body = json.loads(event.data) if event.data else None
                print_result(body["result"] if isinstance(body, dict) and "result" in body else body)
                return
            if event.is_error:
                if not at_line_start:
                    write_chunk("\n")
                fail(f"The pipeline failed while streaming: {_sse_error_text(event.data)}", EXIT_ERROR)
            text = event.data
            if event.is_sse and _is_json_document(text):
                text = ("" if at_line_start else "\n") + text + "\n"
            if text:
                write_chunk(text)
                at_line_start = text.endswith("\n")
    if not at_line_start:
        write_chunk("\n")


def _is_json_document(text: str) -> bool:
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return False
    try:
        json.loads(stripped)
    except ValueError:
        return False
    return True


def _sse_error_text(data: str) -> str:
    try:
        payload = json.loads(data)
    except ValueError:
        return data
    if isinstance(payload, dict):
        from hayhooks.cli.client import format_detail

        for key in ("detail", "error", "message"):
            if key in payload:
                return format_detail(payload[key])
    return data
