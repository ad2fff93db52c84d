"""Options shared by the client commands and how they turn into a ``HayhooksClient``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hayhooks.cli.client import HayhooksClient, resolve_base_url
from hayhooks.cli.output import EXIT_INPUT, fail

UrlOption = Annotated[
    Optional[str],
    typer.Option(
        "--url",
        help="Base URL of the Hayhooks server. Default: http://$HAYHOOKS_HOST:$HAYHOOKS_PORT "
        "(127.0.0.1:1416; a 0.0.0.0 host is reached over 127.0.0.1).",
        show_default=False,
    ),
]
PipelinesDirOption = Annotated[
    Optional[Path],
    typer.Option(
        "--pipelines-dir",
        "-d",
        help="The pipelines directory. \\[env: HAYHOOKS_PIPELINES_DIR; default: ./pipelines]",
        show_default=False,
    ),
]
AdditionalPythonPathOption = Annotated[
    Optional[str],
    typer.Option(
        "--additional-python-path",
        help="Extra import path(s) for wrappers, os.pathsep-separated. \\[env: HAYHOOKS_ADDITIONAL_PYTHON_PATH]",
        show_default=False,
    ),
]
TokenOption = Annotated[
    Optional[str],
    typer.Option(
        "--token",
        help="Admin token sent as `Authorization: Bearer`. Default: $HAYHOOKS_ADMIN_TOKEN.",
        show_default=False,
    ),
]


def build_settings(overrides: dict[str, Any]) -> Any:
    """``HayhooksSettings(**overrides)``: the given flags win, the rest comes from the env / .env.

    A bad value is reported once, naming the flag or the variable it came from, never a traceback.
    """
    from pydantic import ValidationError

    from hayhooks.settings import HayhooksSettings

    try:
        return HayhooksSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            where = f"--{field.replace('_', '-')}" if field in overrides else f"HAYHOOKS_{field.upper()}"
            problems.append(f"{where}: {error['msg']}")
        fail("Invalid settings: " + "; ".join(problems), EXIT_INPUT)


def make_client(url: Optional[str], token: Optional[str]) -> HayhooksClient:
    """A client for ``--url`` (or the settings' host and port) with ``--token`` (or the settings').

    HAYHOOKS_USE_HTTPS picks ``https://`` for the settings' address (and a scheme-less ``--url``);
    HAYHOOKS_DISABLE_SSL turns certificate checks off, as in Hayhooks 2.x. The first of the CLI's own
    HAYHOOKS_API_KEYS is sent as ``X-API-Key`` for servers that require one.
    """
    settings = build_settings({})
    base_url = resolve_base_url(url, settings.host, settings.port, https=settings.use_https)
    api_key = settings.api_keys[0] if settings.api_keys else None
    return HayhooksClient(
        base_url, token=token or settings.admin_token, api_key=api_key, verify=not settings.disable_ssl
    )


def ignore_rules() -> Any:
    """HAYHOOKS_FILES_TO_IGNORE_PATTERNS as the rules ``deploy-files`` reads a folder with."""
    from hayhooks.pipelines.ignore import IgnoreRules

    return IgnoreRules(build_settings({}).files_to_ignore_patterns)
