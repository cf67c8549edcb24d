"""Scale-out of ``explainer batch`` on Dask: partitions of the dataset go to the cluster's
workers (``dask.distributed`` schedules them), each worker explains its partition against
the predictor, and the driver appends each finished partition to the same journal —
resumable the same way as a single-process run."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from explainer import batch
from explainer.batch_cli import BatchJob, open_engine


def run_on_dask(config: batch.BatchConfig, job: BatchJob, address: str) -> batch.BatchSummary:
    from distributed import Client, LocalCluster, as_completed

    done = batch.finished_rows(config.journal)
    total = batch.count_rows(config.input) or 0
    partitions = [
        (first, min(first + config.partition_rows, total))
        for first in range(0, total, config.partition_rows)
        if any(i not in done for i in range(first, min(first + config.partition_rows, total)))
    ]
    cluster: Any = None
    if address.startswith("local:"):
        cluster = LocalCluster(
            n_workers=int(address.split(":", 1)[1]),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    progress = batch.Progress(config, total, len(done))
    counts = [0, 0]
    started = time.perf_counter()
    try:
        with Client(cluster or address) as client, config.journal.open("ab") as journal:
            futures = [
                client.submit(
                    explain_partition,
                    job,
                    config,
                    first,
                    stop,
                    sorted(done & set(range(first, stop))),
                    pure=False,
                )
                for first, stop in partitions
            ]
            for future in as_completed(futures):
                batch.write(journal, future.result(), counts, progress)
    finally:
        if cluster is not None:
            cluster.close()
    return batch.finish(config, progress, counts, len(done), total, started)


def explain_partition(
    job: BatchJob, config: batch.BatchConfig, first: int, stop: int, finished: list[int]
) -> list[tuple[bytes, bool]]:
    """Runs on a Dask worker: rows ``first`` to ``stop`` − 1, minus the finished ones."""
    rows = batch.read_range(job.input, first, stop)
    todo = np.array([first + i not in set(finished) for i in range(len(rows))])

    async def explain() -> list[tuple[bytes, bool]]:
        async with open_engine(job) as engine:
            return await batch.explain_range(engine, config, first, rows, todo)

    return asyncio.run(explain())
