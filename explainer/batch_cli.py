"""``explainer batch``: wiring a dataset, a predictor and the engine together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from pydantic import ValidationError

from explainer import batch, storage
from explainer.background_data import BackgroundStore, load_background_setting
from explainer.cli import StartupError, load_settings
from explainer.engine import Engine
from explainer.errors import ExplainerError
from explainer.predictor import Predictor, PredictorConfig
from explainer.predictor_local import LocalPredictor
from explainer.settings import Settings, describe_error

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
BACKGROUND_FROM_INPUT_ROWS = 10_000


def run_batch(args: Any) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    storage.quiet_client_logs()
    flags = {k: v for k, v in vars(args).items() if k not in BATCH_ONLY}
    config = batch.BatchConfig(
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
    if args.model_file:
        try:
            settings = Settings(**{"model_name": "model", **flags})
        except ValidationError as exc:
            raise StartupError(describe_error(exc)) from None
    else:
        settings = load_settings(flags)
    if config.chunk_rows > settings.max_rows:
        raise StartupError(f"--chunk_rows must be at most MAX_ROWS ({settings.max_rows})")
    try:
        if args.dask:
            from explainer.batch_dask import run_on_dask

            summary = run_on_dask(
                config, BatchJob(settings, config.input, args.model_file), args.dask
            )
        else:
            summary = asyncio.run(_run(config, settings, args.model_file))
    except KeyboardInterrupt:
        log.warning("interrupted: finished rows are in %s; run again to go on", config.journal)
        return 130
    except ExplainerError as exc:
        log.error(
            "stopped: %s; finished rows are in %s; run again to go on", exc.message, config.journal
        )
        return 3
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
        return storage.download(uri, output.with_name(output.name + ".input"), batch.INPUT_SUFFIXES)
    except (OSError, ValueError) as exc:
        raise StartupError(f"input: {storage.safe(str(exc))}") from None


@dataclass(frozen=True)
class BatchJob:
    """Everything needed to build the engine again, in another process (a Dask worker)."""

    settings: Settings
    input: Path
    model_file: str | None


async def _run(
    config: batch.BatchConfig, settings: Settings, model_file: str | None
) -> batch.BatchSummary:
    async with open_engine(BatchJob(settings, config.input, model_file)) as engine:
        return await batch.run(config, engine)


@asynccontextmanager
async def open_engine(job: BatchJob) -> AsyncIterator[Engine]:
    settings = job.settings
    rows, names, source = _background(settings, job.input)
    store = BackgroundStore(
        rows,
        source=source,
        shap_size=settings.shap_background_size,
        reservoir_size=settings.background_reservoir_size,
        seed=settings.seed,
    )
    names = settings.feature_names or batch.read_names(job.input) or names
    async with aiohttp.ClientSession() as session:
        predictor = _predictor(settings, session, job.model_file)
        try:
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="explainer") as executor:
                engine = Engine(
                    settings,
                    predictor,
                    store,
                    executor,
                    features=rows.shape[1],
                    feature_names=names,
                )
                engine.adopt(await predictor.load_metadata())
                yield engine
        finally:
            await predictor.close()


def _predictor(
    settings: Settings, session: aiohttp.ClientSession, model_file: str | None
) -> Predictor:
    if model_file:
        config = PredictorConfig(
            base_url=f"file://{model_file}",
            model_name=settings.model_name or "model",
            output=settings.predictor_output,
        )
        try:
            return LocalPredictor(model_file, config)
        except (OSError, ValueError) as exc:
            raise StartupError(f"--model_file {model_file}: {exc}") from None
    from explainer.app import make_predictor

    return make_predictor(settings, session, lambda *_: None)


def _background(settings: Settings, input_path: Path) -> tuple[np.ndarray, list[str] | None, str]:
    """BACKGROUND_DATA, or else the dataset's own first rows: never the rows' order-dependent
    reservoir, so that a row's explanation does not depend on which rows came before."""
    if settings.background_data:
        try:
            rows, names = load_background_setting(settings)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        return rows, names, "BACKGROUND_DATA"
    chunks = []
    for _, rows in batch.read_chunks(input_path, 4096):
        chunks.append(rows[np.isfinite(rows).all(axis=1)])
        if sum(len(c) for c in chunks) >= BACKGROUND_FROM_INPUT_ROWS:
            break
    data = np.concatenate(chunks)[:BACKGROUND_FROM_INPUT_ROWS]
    if not len(data):
        raise StartupError(f"{input_path} has no complete row to use as background data")
    return data, None, f"input (first {len(data)} rows)"
