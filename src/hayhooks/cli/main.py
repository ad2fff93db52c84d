"""The ``hayhooks`` command: ``run`` the server, talk to a running one, and the ``mcp`` commands."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from hayhooks.cli.common import (
    AdditionalPythonPathOption,
    PipelinesDirOption,
    TokenOption,
    UrlOption,
    build_settings,
    make_client,
)
from hayhooks.cli.execution import execution_app
from hayhooks.cli.output import console, fail, handle_errors, status_view
from hayhooks.cli.pipeline import deploy_yaml_command, pipeline_app
from hayhooks.cli.top import top_command
from hayhooks.mcp.cli import mcp_app
from hayhooks.rayserve.cli import ray_app

app = typer.Typer(
    name="hayhooks",
    help="Serve Haystack pipelines as HTTP, OpenAI-compatible and MCP APIs, and manage a running server.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        from hayhooks.version import __version__

        console.print(f"hayhooks {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Show the version and exit.", callback=_version_callback, is_eager=True
        ),
    ] = False,
) -> None:
    """Hayhooks: Haystack pipelines as HTTP, OpenAI-compatible and MCP APIs."""


# -- run -----------------------------------------------------------------------------------------


# The short flags of Hayhooks 2.x: `-h` is the host here, so only `--help` shows the help.
@app.command("run", context_settings={"help_option_names": ["--help"]})
def run(
    host: Annotated[
        Optional[str],
        typer.Option(
            "--host",
            "-h",
            help="Address to bind to. \\[env: HAYHOOKS_HOST; default: 127.0.0.1]",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        Optional[int],
        typer.Option(
            "--port",
            "-p",
            help="Port to listen on. \\[env: HAYHOOKS_PORT; default: 1416]",
            show_default=False,
        ),
    ] = None,
    pipelines_dir: PipelinesDirOption = None,
    root_path: Annotated[
        Optional[str],
        typer.Option(
            "--root-path",
            help="ASGI root path when served behind a proxy under a prefix. \\[env: HAYHOOKS_ROOT_PATH]",
            show_default=False,
        ),
    ] = None,
    additional_python_path: AdditionalPythonPathOption = None,
    reload: Annotated[
        bool, typer.Option("--reload", "-r", help="Reload changed pipelines within 0.25 s (development).")
    ] = False,
    workers: Annotated[
        Optional[str],
        typer.Option(
            "--workers",
            "-w",
            metavar="N|auto",
            help="Worker processes: a number or `auto` (usable cores). \\[env: HAYHOOKS_WORKERS; default: 1]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the Hayhooks server. Flags override HAYHOOKS_* environment variables and .env."""
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "host": host,
            "port": port,
            "pipelines_dir": pipelines_dir,
            "root_path": root_path,
            "additional_python_path": additional_python_path,
            "workers": workers,
        }.items()
        if value is not None
    }
    settings = build_settings(overrides)
    try:
        from hayhooks.server.runner import run_server
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("hayhooks.server"):
            fail(f"The Hayhooks server is not available in this installation ({exc}).")
        raise
    run_server(settings, reload=reload)


# -- status / deploy -----------------------------------------------------------------------------


@app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw /status answer as JSON.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show the server's state: deployed pipelines, failed ones and workers."""
    with handle_errors():
        with make_client(url, token) as client:
            body = client.status()
            base_url = client.base_url
    if as_json:
        from hayhooks.cli.output import print_result

        print_result(body)
        return
    status_view(base_url, body)


app.command("deploy", help="Deploy a pipeline from a YAML file (short form of `pipeline deploy-yaml`).")(
    deploy_yaml_command
)
app.add_typer(pipeline_app, name="pipeline")
app.command("top")(top_command)
app.add_typer(execution_app, name="execution")


# -- mcp -----------------------------------------------------------------------------------------

app.add_typer(mcp_app, name="mcp")

# -- ray (extra hayhooks[ray]) -------------------------------------------------------------------

app.add_typer(ray_app, name="ray")


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
