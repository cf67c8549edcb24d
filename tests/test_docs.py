"""The docs say what the code is: the settings reference is generated from the settings
object, the module map names every module, links resolve, and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

from tools.settings_doc import TARGET, render

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_settings_reference_is_the_settings_object() -> None:
    assert TARGET.read_text() == render(), "run `python -m tools.settings_doc`"


def test_the_module_map_names_every_module() -> None:
    tree = (ROOT / "docs" / "architecture.md").read_text()
    missing = [
        str(path.relative_to(ROOT))
        for package in ("explainer", "explainers")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py") and f" {path.name} " not in tree
    ]
    assert missing == []


def test_every_relative_link_resolves() -> None:
    broken = [
        (doc.name, target)
        for doc in DOCS
        for target in re.findall(r"\]\(([^)#]+)\)", doc.read_text())
        if "://" not in target and not (doc.parent / target).exists()
    ]
    assert broken == []


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    assert any(line.startswith("make demo") for line in lines[:8])
    assert any(line.startswith("make test") for line in lines[:8])
