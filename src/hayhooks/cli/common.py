"""Options shared by the client commands and how they turn into a ``HayhooksClient``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from hayhooks.cli.client import DEFAULT_HOST, DEFAULT_PORT, HayhooksClient, resolve_base_url
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
TokenOption = Annotated[
    Optional[str],
    typer.Option(
        "--token",
        help="Admin token sent as `Authorization: Bearer`. Default: $HAYHOOKS_ADMIN_TOKEN.",
        show_default=False,
    ),
]


def make_client(url: Optional[str], token: Optional[str]) -> HayhooksClient:
    """A client for ``--url`` (or the settings' host and port) with ``--token`` (or the settings')."""
    host, port, settings_token = DEFAULT_HOST, DEFAULT_PORT, None
    if url is None or token is None:
        from pydantic import ValidationError

        from hayhooks.settings import HayhooksSettings

        try:
            settings = HayhooksSettings()
        except ValidationError as exc:
            problems = "; ".join(
                f"HAYHOOKS_{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
            )
            fail(f"Invalid Hayhooks settings in the environment / .env: {problems}", EXIT_INPUT)
        host, port, settings_token = settings.host, settings.port, settings.admin_token
    return HayhooksClient(resolve_base_url(url, host, port), token=token or settings_token)
