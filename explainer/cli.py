"""``explainer``: ``serve`` (the KServe explainer container) and ``demo``.

argv is parsed only inside ``main``. ``serve`` has one ``--<setting>`` flag per field of
``Settings`` (flags win over the environment) and accepts the flags KServe appends,
including ones it does not use. A bad setting ends start-up with one line naming it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from explainer import __version__, storage
from explainer.memory import keep_freed_memory
from explainer.settings import Settings, describe_error

log = logging.getLogger("explainer")

# KServe's own explainers know these long names; they map onto our settings.
_FLAG_ALIASES = {
    "predictor_request_timeout_seconds": "predictor_timeout",
    "predictor_request_retries": "predictor_retries",
}
SHUTDOWN_TIMEOUT_SECONDS = 20.0  # below Kubernetes' 30 s grace period
SHUTDOWN_DELAY_SECONDS = 1.0  # not ready, still listening: time for endpoints to update


class StartupError(Exception):
    """A setting that stops start-up; its message is the one line shown."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="explainer", description="LIME/SHAP explainer for KServe")
    parser.add_argument("--version", action="version", version=f"explainer-sidecar {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve :explain beside a predictor")
    _add_setting_flags(serve_parser)
    demo_parser = commands.add_parser("demo", help="serve the credit-score demo")
    demo_parser.add_argument("--http_port", type=int, default=8080)
    demo_parser.add_argument("--host", default="127.0.0.1")
    demo_parser.add_argument("--explainer_type", default="ALL")
    demo_parser.add_argument(
        "--once", action="store_true", help="send one request per body format, print, exit"
    )
    health_parser = commands.add_parser(
        "healthcheck", help="exit 0 if the explainer on this host answers its probe"
    )
    health_parser.add_argument("--http_port", type=int, default=None)
    health_parser.add_argument("--path", default="/v2/health/live")
    commands.add_parser("warm-up", help="compile every numba kernel into NUMBA_CACHE_DIR")
    batch_parser = commands.add_parser("batch", help="explain every row of a dataset")
    batch_parser.add_argument(
        "input", help="CSV (header: feature names), Parquet, .npy or JSON Lines"
    )
    batch_parser.add_argument(
        "--out", required=True, help="output: .jsonl, or .parquet (long form)"
    )
    batch_parser.add_argument("--model_file", help="a joblib model to score in-process, no server")
    batch_parser.add_argument("--chunk_rows", type=int, default=16, help="rows per engine call")
    batch_parser.add_argument("--in_flight", type=int, default=4, help="chunks explained at once")
    batch_parser.add_argument(
        "--dask", help="a Dask scheduler address, or local:N for N local workers on loopback"
    )
    batch_parser.add_argument("--partition_rows", type=int, default=256, help="rows per Dask task")
    report_parser = commands.add_parser("report", help="an HTML report of a batch run")
    report_parser.add_argument(
        "output", help="the batch output (.jsonl, or .parquet with its journal)"
    )
    report_parser.add_argument("--html", required=True, help="where to write the report")
    _add_setting_flags(batch_parser)
    args, unknown = parser.parse_known_args(argv)
    if args.command in NUMERIC_COMMANDS:  # not healthcheck or report: they start fast
        _one_blas_thread()
        keep_freed_memory()
    try:
        if args.command == "serve":
            return _serve(args, unknown)
        if args.command == "batch":
            if unknown:
                parser.error(f"unrecognized arguments: {' '.join(unknown)}")
            from explainer.batch_cli import run_batch

            return run_batch(args)
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        if args.command == "report":
            from explainer.report import write_report

            output = Path(args.output)
            journal = output if output.suffix == ".jsonl" else Path(f"{output}.jsonl")
            try:
                write_report(journal, Path(args.html))
            except (OSError, ValueError) as exc:
                raise StartupError(str(exc)) from None
            print(f"wrote {args.html}")
            return 0
        if args.command == "healthcheck":
            return _healthcheck(args.http_port, args.path)
        if args.command == "warm-up":
            from explainers.warm_up import warm_up

            warm_up()
            return 0
        from explainer import demo

        return asyncio.run(demo.run(args.host, args.http_port, args.explainer_type, args.once))
    except StartupError as exc:
        print(f"explainer: {exc}", file=sys.stderr)
        return 2


# The commands that explain, and so do linear algebra.
NUMERIC_COMMANDS = frozenset({"serve", "batch", "demo", "warm-up"})


def _one_blas_thread() -> None:
    """The explainer's linear algebra is on small matrices (M × M, a few thousand rows),
    where a BLAS thread per core only contends with the predictor and with the
    explainer's own workers for the same cores (measured: `:explain` over the predictor
    alone 1.15–1.19 → 1.07–1.10, ALL mode, gRPC, 2 cores). Its parallelism is its
    executor's threads and the predictor calls in flight instead."""
    import numpy  # noqa: F401 — load the BLAS libraries so that the limit reaches them
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _healthcheck(port: int | None, path: str) -> int:
    """The container's HEALTHCHECK: standard library only, so it starts fast."""
    import os
    import urllib.request

    port = port or int(os.environ.get("HTTP_PORT") or os.environ.get("PORT") or 8080)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"explainer: healthcheck failed: {exc}", file=sys.stderr)
        return 1


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for name, info in Settings.model_fields.items():
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": info.description}
        if info.annotation is bool:
            kwargs.update(nargs="?", const="true")
        parser.add_argument(f"--{name}", **kwargs)
    for alias, name in _FLAG_ALIASES.items():
        parser.add_argument(f"--{alias}", dest=name, default=argparse.SUPPRESS, help=f"= --{name}")


def load_settings(flags: dict[str, Any]) -> Settings:
    try:
        settings = Settings(**flags)
    except ValidationError as exc:
        raise StartupError(describe_error(exc)) from None
    for field, env in (("model_name", "MODEL_NAME"), ("predictor_host", "PREDICTOR_HOST")):
        if not getattr(settings, field):
            raise StartupError(f"missing setting {env} / --{field}: it is required")
    return settings


def _serve(args: argparse.Namespace, unknown: list[str]) -> int:
    from explainer.app import create_app
    from explainer.engine import describe

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
    asyncio.run(_run_until_signalled(app, settings))
    return 0


async def _run_until_signalled(app: Any, settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully: readiness false and new
    explanations refused at once; after ``SHUTDOWN_DELAY_SECONDS`` (for Kubernetes to take
    the pod out of its endpoints) the explanations in progress are given the rest of
    ``SHUTDOWN_TIMEOUT_SECONDS`` to finish; then the listener closes and the process exits,
    all within Kubernetes' 30 s grace period."""
    import signal

    from aiohttp import web

    from explainer.app import drain

    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.http_port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        await drain(app, SHUTDOWN_DELAY_SECONDS, SHUTDOWN_TIMEOUT_SECONDS - SHUTDOWN_DELAY_SECONDS)
    finally:
        await runner.cleanup()
