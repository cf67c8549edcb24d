"""``explainer batch``: a dataset, a predictor and the engine, through the composition root."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from explainer import storage
from explainer.batch import dataset, runner
from explainer.batch.job import BatchJob, open_job
from explainer.cli.options import StartupError, load_settings
from explainer.errors import ExplainerError

log = logging.getLogger("explainer.batch")

BATCH_ONLY = (
    "command",
    "input",
    "out",
    "model_file",
    "chunk_rows",
    "in_flight",
    "dask",
    "partition_rows",
)


def run_batch(args: Any) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    storage.quiet_client_logs()
    flags = {k: v for k, v in vars(args).items() if k not in BATCH_ONLY}
    config = runner.BatchConfig(
        input=_local_input(args.input, Path(args.out)),
        output=Path(args.out),
        chunk_rows=args.chunk_rows,
        in_flight=args.in_flight,
        partition_rows=args.partition_rows,
    )
    if not config.input.is_file():
        raise StartupError(f"input {config.input} does not exist")
    if config.output.suffix not in (".jsonl", ".parquet"):
        raise StartupError(f"--out {config.output}: use a .jsonl or .parquet file")
    if args.model_file:  # no server: the model file stands in for the predictor
        settings = load_settings({"model_name": "model", **flags}, required=False)
    else:
        settings = load_settings(flags)
    if config.chunk_rows > settings.max_rows:
        raise StartupError(f"--chunk_rows must be at most MAX_ROWS ({settings.max_rows})")
    job = BatchJob(settings, config.input, args.model_file)
    try:
        if args.dask:
            from explainer.batch.dask import run_on_dask

            summary = run_on_dask(config, job, args.dask)
        else:
            summary = asyncio.run(_run(config, job))
    except KeyboardInterrupt:
        log.warning("interrupted: finished rows are in %s; run again to go on", config.journal)
        return 130
    except ExplainerError as exc:
        log.error(
            "stopped: %s; finished rows are in %s; run again to go on", exc.message, config.journal
        )
        return 3
    except ValueError as exc:  # the background or the model file cannot be used
        raise StartupError(str(exc)) from None
    log.info(
        "%d rows: %d explained, %d failed, %d already done; %.1f s (%.1f rows/s)",
        summary.rows,
        summary.explained,
        summary.failed,
        summary.skipped,
        summary.seconds,
        (summary.explained + summary.failed) / max(summary.seconds, 1e-9),
    )
    return 1 if summary.failed else 0


def _local_input(uri: str, output: Path) -> Path:
    """The input as a local file. A remote one (``s3://``, ``https://``) or a directory
    holding one data file is copied next to the output once, as ``<out>.input.<suffix>``,
    so a rerun resumes against the same rows (delete the copy to fetch again)."""
    if not storage.scheme(uri) and not Path(uri).is_dir():
        return Path(uri)
    try:
        return storage.download(
            uri, output.with_name(output.name + ".input"), dataset.INPUT_SUFFIXES
        )
    except (OSError, ValueError) as exc:
        raise StartupError(f"input: {storage.safe(str(exc))}") from None


async def _run(config: runner.BatchConfig, job: BatchJob) -> runner.BatchSummary:
    async with open_job(job) as engine:
        return await runner.run(config, engine)
