"""``HAYHOOKS_FILES_TO_IGNORE_PATTERNS``: which files of a pipeline folder are not part of it.

Compiled caches, native extensions and build leftovers (``*.pyc``, ``__pycache__``, ``*.so``,
``*.egg-info``...) are skipped when the CLI reads a folder to deploy it and when the server takes
files into a pipeline: they are never uploaded, stored, or counted as a change of the pipeline.
A pattern matches any component of a relative path (``__pycache__`` skips that folder and all it
holds), with shell wildcards (``fnmatch``).
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import PurePath

DEFAULT_PATTERNS = ("*.pyc", "*.pyo", "*.pyd", "__pycache__", "*.so", "*.egg", "*.egg-info")


class IgnoreRules:
    def __init__(self, patterns: Iterable[str] = DEFAULT_PATTERNS) -> None:
        self.patterns = tuple(p.strip() for p in patterns if p and p.strip())

    def __repr__(self) -> str:
        return f"IgnoreRules({list(self.patterns)!r})"

    def matches_name(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.patterns)

    def ignores(self, relative: PurePath | str) -> bool:
        """True when the file at ``relative`` (inside a pipeline folder) is to be left out."""
        parts = PurePath(relative).parts
        return any(self.matches_name(part) for part in parts)
