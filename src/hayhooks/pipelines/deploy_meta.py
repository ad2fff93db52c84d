"""What a deploy says about a pipeline beyond its files: its description and whether MCP lists it.

``deploy-files --description`` / ``--skip-mcp`` (and the same fields of ``POST /deploy-files``)
are written next to the pipeline's files, as ``.hayhooks-deploy.json`` in its folder, so that every
worker and every later start reads them from the store, like the code itself. Users cannot upload
hidden files, so the file is always the server's own.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

FILE_NAME = ".hayhooks-deploy.json"

log = logging.getLogger("hayhooks")


@dataclass(frozen=True)
class DeployMeta:
    description: Optional[str] = None
    skip_mcp: bool = False

    @property
    def empty(self) -> bool:
        return self.description is None and not self.skip_mcp

    def as_files(self) -> dict[PurePosixPath, str]:
        """The metadata as an extra file of the deploy (none when there is nothing to say)."""
        if self.empty:
            return {}
        body = {"description": self.description, "skip_mcp": self.skip_mcp}
        return {PurePosixPath(FILE_NAME): json.dumps(body, indent=2) + "\n"}


def read(folder: Path) -> DeployMeta:
    """The metadata saved in a pipeline folder; a missing or unreadable file means none."""
    path = folder / FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DeployMeta()
    except (OSError, ValueError) as exc:
        log.warning("Ignoring %s: %s", path, exc)
        return DeployMeta()
    if not isinstance(data, dict):
        log.warning("Ignoring %s: not a JSON object", path)
        return DeployMeta()
    description = data.get("description")
    return DeployMeta(
        description=description if isinstance(description, str) and description.strip() else None,
        skip_mcp=data.get("skip_mcp") is True,
    )
