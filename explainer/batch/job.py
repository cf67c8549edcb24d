"""A batch job: what it takes to build the engine, in this process or on a Dask worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explainer.background_data import LoadedBackground, load_background_setting
from explainer.batch.dataset import complete, is_text_input, read_chunks, read_names
from explainer.composition import open_service
from explainer.engine import Engine
from explainer.settings import Settings

BACKGROUND_FROM_INPUT_ROWS = 10_000


@dataclass(frozen=True)
class BatchJob:
    """Everything needed to build the engine again, in another process (a Dask worker)."""

    settings: Settings
    input: Path
    model_file: str | None


@asynccontextmanager
async def open_job(job: BatchJob) -> AsyncIterator[Engine]:
    """The engine for ``job`` (``composition.open_service``), with the predictor's
    metadata adopted. Raises ValueError for a background or model file it cannot use.
    Texts (one column of text, no BACKGROUND_DATA) need no background and no features."""
    texts = not job.settings.background_data and is_text_input(job.input)
    async with open_service(
        job.settings,
        None if texts else background(job.settings, job.input),
        model_file=job.model_file,
        feature_names=None if texts else read_names(job.input),
    ) as service:
        service.engine.adopt(await service.predictor.load_metadata())
        yield service.engine


def background(settings: Settings, input_path: Path) -> LoadedBackground:
    """BACKGROUND_DATA, or else the dataset's own first rows: never the rows' order-dependent
    reservoir, so that a row's explanation does not depend on which rows came before."""
    if settings.background_data:
        rows, names = load_background_setting(settings)
        return LoadedBackground(rows, names, "BACKGROUND_DATA")
    chunks = []
    for _, rows in read_chunks(input_path, 4096):
        chunks.append(rows[complete(rows)])
        if sum(len(c) for c in chunks) >= BACKGROUND_FROM_INPUT_ROWS:
            break
    data = np.concatenate(chunks)[:BACKGROUND_FROM_INPUT_ROWS]
    if not len(data):
        raise ValueError(f"{input_path} has no complete row to use as background data")
    return LoadedBackground(data, None, f"input (first {len(data)} rows)")
