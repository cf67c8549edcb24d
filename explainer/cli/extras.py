"""Optional dependencies: a command that needs an extra says which, in one line."""

from __future__ import annotations

import importlib.util

from explainer.cli.options import StartupError

# What each extra brings that a command imports (pyproject.toml's optional-dependencies).
EXTRAS = {"batch": ("pandas", "pyarrow", "matplotlib", "distributed")}


def require(extra: str, command: str) -> None:
    """Raise ``StartupError`` naming the extra if a module it brings is not installed."""
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise StartupError(
            f"`explainer {command}` needs the {extra} extra (missing: {', '.join(missing)}): "
            f"pip install 'explainer-sidecar[{extra}]'"
        )
