"""docs/compatibility.md stays in step with the code: every setting is in its table, and no row
claims a setting this server does not have."""

from __future__ import annotations

import re
from pathlib import Path

from hayhooks.settings import HayhooksSettings

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "compatibility.md"
STATUSES = {"same", "differs", "not yet", "new"}


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no '## {title}' section in {DOC.name}"
    return match.group(1)


def rows(body: str) -> list[list[str]]:
    """The table rows of a section (header and separator left out), as cells."""
    out = []
    for line in body.splitlines():
        if line.startswith("|") and not line.startswith("| ---"):
            out.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return out[1:]


def expand(cell: str) -> set[str]:
    """``HAYHOOKS_CORS_ALLOW_ORIGINS`, `_ALLOW_METHODS`` → both full names."""
    names: set[str] = set()
    prefix = ""
    for token in re.findall(r"`([A-Z_*]+)`", cell):
        if token.startswith("HAYHOOKS_"):
            names.add(token)
            prefix = re.sub(r"_ALLOW.*|_EXPOSE.*|_MAX.*", "", token)
        elif token.startswith("_") and prefix:
            names.add(prefix + token)
    return names


def test_every_setting_is_in_the_settings_table() -> None:
    listed = set().union(*(expand(r[0]) for r in rows(section("Settings"))))
    missing = [
        f"HAYHOOKS_{name.upper()}"
        for name in HayhooksSettings.model_fields
        if f"HAYHOOKS_{name.upper()}" not in listed
    ]
    assert not missing, f"add these settings to docs/compatibility.md: {missing}"


def test_rows_claiming_a_setting_name_a_real_one() -> None:
    """A *same*, *differs* or *new* row must name a field of HayhooksSettings, unless it is marked †
    (built in this release by another change) or is documented as not needed here (*differs*)."""
    fields = {f"HAYHOOKS_{name.upper()}" for name in HayhooksSettings.model_fields}
    for cells in rows(section("Settings")):
        status = cells[1]
        if "†" in status or status in ("not yet", "differs") or "*" in cells[0]:
            continue
        for name in expand(cells[0]):
            assert name in fields, f"{name} is marked '{status}' but HayhooksSettings has no such field"


def test_every_row_has_a_known_status() -> None:
    text = DOC.read_text(encoding="utf-8")
    titles = re.findall(r"^## (.+)$", text, re.M)
    assert {
        "CLI commands and flags",
        "HTTP routes",
        "Settings",
        "Public helpers (`from hayhooks import ...`)",
    } <= set(titles)
    for title in titles:
        for cells in rows(section(title)):
            assert cells[1].replace(" †", "") in STATUSES, f"{title}: {cells}"


def test_the_readme_links_the_page() -> None:
    assert "docs/compatibility.md" in (ROOT / "README.md").read_text(encoding="utf-8")
