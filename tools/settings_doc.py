"""Write docs/settings.md from the settings object (``python -m tools.settings_doc``);
``tests/test_docs.py`` fails when the file and the object disagree."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import AliasChoices

from explainer.cli.options import FLAG_ALIASES
from explainer.settings import Settings

TARGET = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
HEAD = """# Settings

Generated from `explainer/settings.py` by `python -m tools.settings_doc`; do not edit.

Every setting is an environment variable and a flag of `explainer serve` and
`explainer batch` (flags win), validated at start-up: a bad value stops the process with
one line naming the setting, and exit status 2. Flags KServe appends that the explainer
does not use are accepted and logged.

| flag | environment | default | what it does |
|---|---|---|---|
"""


def render() -> str:
    aliases = {name: alias for alias, name in FLAG_ALIASES.items()}
    rows = []
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else []
        env = ", ".join(f"`{c}`" for c in choices if isinstance(c, str) and c.isupper())
        flags = [f"`--{name}`"] + ([f"`--{aliases[name]}`"] if name in aliases else [])
        default = "—" if info.default is None else f"`{info.default}`"
        description = (info.description or "").replace("|", "\\|")
        rows.append(f"| {', '.join(flags)} | {env} | {default} | {description} |")
    return HEAD + "\n".join(rows) + "\n"


def main() -> int:
    TARGET.write_text(render())
    print(f"wrote {TARGET}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
