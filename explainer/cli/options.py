"""What every command shares: one ``--<setting>`` flag per field of ``Settings`` (flags
win over the environment), KServe's long flag names, and ``StartupError`` — the one line
a command prints, with exit status 2, when it cannot start."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from explainer.settings import Settings, describe_error

# KServe's own explainers know these long names; they map onto our settings.
FLAG_ALIASES = {
    "predictor_request_timeout_seconds": "predictor_timeout",
    "predictor_request_retries": "predictor_retries",
}


class StartupError(Exception):
    """A setting, file or missing extra that stops start-up; its message is the line shown."""


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for name, info in Settings.model_fields.items():
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": info.description}
        if info.annotation is bool:
            kwargs.update(nargs="?", const="true")
        parser.add_argument(f"--{name}", **kwargs)
    for alias, name in FLAG_ALIASES.items():
        parser.add_argument(f"--{alias}", dest=name, default=argparse.SUPPRESS, help=f"= --{name}")


def load_settings(flags: dict[str, Any], *, required: bool = True) -> Settings:
    """The validated settings; ``required``: MODEL_NAME and PREDICTOR_HOST must be set."""
    try:
        settings = Settings(**flags)
    except ValidationError as exc:
        raise StartupError(describe_error(exc)) from None
    if required:
        for field, env in (("model_name", "MODEL_NAME"), ("predictor_host", "PREDICTOR_HOST")):
            if not getattr(settings, field):
                raise StartupError(f"missing setting {env} / --{field}: it is required")
    return settings
