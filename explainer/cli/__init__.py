"""``explainer``: ``serve``, ``batch``, ``report``, ``demo``, ``healthcheck``, ``warm-up``.

argv is parsed only inside ``main``; each command's module is imported only when it
runs, so ``healthcheck`` and ``report`` start fast and a missing extra is one line. A
bad setting ends start-up with one line naming it, and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from explainer import __version__
from explainer.cli.extras import require
from explainer.cli.options import StartupError, add_setting_flags
from explainer.memory import keep_freed_memory

__all__ = ["StartupError", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="explainer", description="LIME/SHAP explainer for KServe")
    parser.add_argument("--version", action="version", version=f"explainer-sidecar {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve :explain beside a predictor")
    add_setting_flags(serve_parser)
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
    add_setting_flags(batch_parser)
    args, unknown = parser.parse_known_args(argv)
    if args.command in NUMERIC_COMMANDS:  # not healthcheck or report: they start fast
        _one_blas_thread()
        keep_freed_memory()
    try:
        if args.command == "serve":
            from explainer.cli.serve import serve

            return serve(args, unknown)
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        if args.command == "batch":
            require("batch", "batch")
            from explainer.cli.batch import run_batch

            return run_batch(args)
        if args.command == "report":
            require("batch", "report")
            from explainer.batch.report import write_report

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
    explainer's own workers for the same cores (CHANGELOG.md has the measurement). Its
    parallelism is its executor's threads and the predictor calls in flight instead."""
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
