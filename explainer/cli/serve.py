"""``explainer serve``: the KServe explainer container.

It accepts the flags KServe appends (``--model_name``, ``--predictor_host``,
``--http_port``, ``--workers``, ...), including ones it does not use, which are logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from explainer import storage
from explainer.cli.options import StartupError, load_settings
from explainer.engine import describe
from explainer.server.app import create_app
from explainer.server.lifecycle import run_until_signalled

log = logging.getLogger("explainer")


def serve(args: argparse.Namespace, unknown: list[str]) -> int:
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    settings = load_settings(flags)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    storage.quiet_client_logs()
    if unknown:
        log.warning("ignoring flags this explainer does not use: %s", " ".join(unknown))
    try:
        app = create_app(settings)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    if settings.workers > 1:
        log.info("--workers %d accepted; one event loop serves all requests", settings.workers)
    log.info("starting explainer: %s", describe(settings))
    asyncio.run(run_until_signalled(app, settings))
    return 0
