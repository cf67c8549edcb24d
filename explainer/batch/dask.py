"""Scale-out of ``explainer batch`` on Dask: partitions of the dataset go to the cluster's
workers (``dask.distributed`` schedules them), each worker explains its partitions
against the predictor, and the driver appends each finished partition to the same
journal — resumable the same way as a single-process run.

Each worker builds its engine once (``EngineOnWorker``, a worker plugin): the predictor
client, its session and coalescer, the stratified background and the compiled kernels
live on one event loop in a thread of the worker, and every partition the worker is
given runs on it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import AsyncExitStack
from typing import Any

import numpy as np
from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker

from explainer.batch import runner
from explainer.batch.dataset import count_rows, read_range
from explainer.batch.job import BatchJob, open_job
from explainer.engine import Engine

PLUGIN = "explainer-engine"
log = logging.getLogger(__name__)


class EngineOnWorker(WorkerPlugin):
    """The job's engine, built when the plugin reaches a worker and closed with it."""

    name = PLUGIN

    def __init__(self, job: BatchJob) -> None:
        self.job = job
        self.builds = 0  # engines built on this worker: one, whatever its partitions
        self.partitions = 0

    def setup(self, worker: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="explainer-engine", daemon=True
        )
        self._thread.start()
        self._stack = AsyncExitStack()
        self.engine: Engine = self.call(self._stack.enter_async_context(open_job(self.job)))
        self.builds += 1

    def teardown(self, worker: Any) -> None:
        self.call(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def call(self, coroutine: Any) -> Any:
        """Run ``coroutine`` on the engine's loop; block this (task) thread for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


def run_on_dask(config: runner.BatchConfig, job: BatchJob, address: str) -> runner.BatchSummary:
    done = runner.finished_rows(config.journal)
    total = count_rows(config.input) or 0
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
    progress = runner.Progress(config, total, len(done))
    counts = [0, 0]
    started = time.perf_counter()
    try:
        with Client(cluster or address) as client, config.journal.open("ab") as journal:
            client.register_plugin(EngineOnWorker(job))
            futures = [
                client.submit(
                    explain_partition,
                    config,
                    first,
                    stop,
                    sorted(done & set(range(first, stop))),
                    pure=False,
                )
                for first, stop in partitions
            ]
            for future in as_completed(futures):
                runner.write(journal, future.result(), counts, progress)
            for address, (builds, explained) in sorted(client.run(_engine_use).items()):
                log.info("worker %s: %d engine(s), %d partition(s)", address, builds, explained)
    finally:
        if cluster is not None:
            cluster.close()
    return runner.finish(config, progress, counts, len(done), total, started)


def explain_partition(
    config: runner.BatchConfig, first: int, stop: int, finished: list[int]
) -> list[tuple[bytes, bool]]:
    """Runs on a Dask worker: rows ``first`` to ``stop`` − 1, minus the finished ones,
    on the worker's engine."""
    plugin = get_worker().plugins[PLUGIN]
    assert isinstance(plugin, EngineOnWorker)
    rows = read_range(config.input, first, stop, kinds=runner.column_kinds(plugin.engine))
    done = set(finished)
    todo = np.array([first + i not in done for i in range(len(rows))])
    lines: list[tuple[bytes, bool]] = plugin.call(
        runner.explain_range(plugin.engine, config, first, rows, todo)
    )
    plugin.partitions += 1
    return lines


def _engine_use(dask_worker: Any) -> tuple[int, int]:
    """(engines built, partitions explained) on a worker (``Client.run``)."""
    plugin = dask_worker.plugins[PLUGIN]
    return plugin.builds, plugin.partitions
