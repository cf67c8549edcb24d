"""The predictor client: the one place that decides how rows reach the predictor.

It composes a transport (``transport.Transport``: v2 REST, v1 REST, v2 gRPC, or a model
in-process) and owns the policy every transport shares: rows are cut into calls of at
most ``max_batch`` rows (or what the transport's message limit allows), at most
``max_concurrency`` in flight; concurrent requests' rows share calls
(``coalescing``); several arrays can be scored as one stream of calls
(``scoring``); which output to explain is settled once (probabilities where offered);
and every call is reported to an observer (metrics).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from explainer.datatypes import ROW_DATATYPES
from explainer.errors import PredictorFailed
from explainer.features import Schema
from explainer.predictor.coalescing import Coalescer
from explainer.predictor.metadata import PROBA_OUTPUT, ModelMetadata
from explainer.predictor.scoring import Scoring
from explainer.predictor.transport import Layout, Transport, is_text

log = logging.getLogger(__name__)

# Told of every inference call: (seconds, rows, succeeded).
CallObserver = Callable[[float, int, bool], None]


@dataclass(frozen=True)
class ClientPolicy:
    datatype: str = "FP64"
    datatype_from_metadata: bool = True  # False when the datatype was set explicitly
    output: str | None = None  # None: predict_proba where offered, else the first output
    max_batch: int = 32_768
    max_concurrency: int = 4
    coalesce: bool = True  # concurrent requests' rows share calls (coalescing)
    coalesce_wait: float = 0.002  # seconds a partly filled call may wait for more rows


class PredictorClient:
    def __init__(
        self,
        transport: Transport,
        policy: ClientPolicy | None = None,
        observe: CallObserver | None = None,
    ) -> None:
        self.transport = transport
        self.policy = policy or ClientPolicy()
        self.metadata = ModelMetadata()
        self.layout = Layout(datatype=self.policy.datatype)
        self._observe = observe
        self._slots = asyncio.Semaphore(self.policy.max_concurrency)
        self._output = self.policy.output or transport.default_output
        self._output_settled = self._output is not None or not transport.chooses_output
        self.rows_sent = 0
        self.calls = 0
        self._coalescer: Coalescer | None = None

    @property
    def output_name(self) -> str | None:
        return self._output

    @property
    def output_settled(self) -> bool:
        return self._output_settled

    async def ready(self) -> bool:
        return await self.transport.ready()

    async def close(self) -> None:
        if self._coalescer is not None:
            await self._coalescer.close()
        await self.transport.close()

    async def load_metadata(self) -> ModelMetadata:
        """Ask the predictor what it serves, and adopt its input layout and outputs."""
        self.metadata = metadata = await self.transport.fetch_metadata()
        datatype = self.layout.datatype
        if self.policy.datatype_from_metadata and metadata.input_datatype in ROW_DATATYPES:
            datatype = metadata.input_datatype
        self.layout = Layout(
            input_name=metadata.input_name or self.layout.input_name,
            datatype=datatype,
            columns=metadata.feature_names,
            schema=self.layout.schema,
            text_rank=2 if metadata.input_rank == 2 else 1,
        )
        if not self._output_settled and metadata.outputs:
            self._output = PROBA_OUTPUT if PROBA_OUTPUT in metadata.outputs else None
            self._output_settled = True
        return metadata

    def use_schema(self, schema: Schema) -> None:
        """Send rows of ``schema``'s mixed features one tensor per feature, in the model's
        own types (by the features' names where the metadata declares no tensors)."""
        if not schema.mixed:
            return
        self.layout = replace(
            self.layout, columns=self.layout.columns or tuple(schema.names), schema=schema
        )

    async def settle_output(self, probe: np.ndarray) -> None:
        """No metadata named the outputs: ask for probabilities once, and keep the
        model's default output if the predictor refuses that output name."""
        try:
            await self._call(probe, PROBA_OUTPUT)
            self._output = PROBA_OUTPUT
        except PredictorFailed as exc:
            if exc.upstream_status not in (400, 422):
                raise
            self._output = None
        self._output_settled = True
        log.info("explaining predictor output %s", self._output or "(model default)")

    def rows_per_call(self, rows: np.ndarray) -> int:
        """The most rows like ``rows`` one call may carry."""
        if is_text(rows):  # texts: the longest one's UTF-8 and its length prefix
            row_bytes = 4 + max((_text_bytes(t) for t in rows.tolist()), default=0)
        else:
            row_bytes = self.layout.row_bytes(_features(rows))
        limit = self.transport.rows_per_call(row_bytes)
        return max(1, min(self.policy.max_batch, limit or self.policy.max_batch))

    async def infer(self, rows: np.ndarray) -> np.ndarray:
        """Scores (n, K) float64 for rows (n, ...), in as few calls as the limits allow."""
        if not self._output_settled:
            await self.settle_output(rows[:1])
        size = self.rows_per_call(rows)
        if self.policy.coalesce:
            if self._coalescer is None or self._coalescer.max_rows != size:
                self._coalescer = Coalescer(
                    partial(self._call, output=self._output),
                    size,
                    self.policy.max_concurrency,
                    self.policy.coalesce_wait,
                )
            return await self._coalescer.score(rows)
        chunks = [rows[i : i + size] for i in range(0, rows.shape[0], size)]
        results = await asyncio.gather(*(self._call(chunk, self._output) for chunk in chunks))
        return results[0] if len(results) == 1 else np.concatenate(results)

    def stream(self) -> Scoring:
        """Several arrays of rows scored as if they were one (``Scoring.add`` each, then
        ``finish``): calls are cut over their concatenation, each sent as soon as it is
        full."""
        return Scoring(self.infer, self.rows_per_call)

    async def _call(self, rows: np.ndarray, output: str | None) -> np.ndarray:
        async with self._slots:
            start = time.perf_counter()
            try:
                scores = await self.transport.score(rows, output, self.layout)
            except Exception:
                self._report(start, rows.shape[0], ok=False)
                raise
        self._report(start, rows.shape[0], ok=True)
        return scores

    def _report(self, start: float, rows: int, ok: bool) -> None:
        self.calls += 1
        self.rows_sent += rows
        if self._observe is not None:
            self._observe(time.perf_counter() - start, rows, ok)


def _features(rows: np.ndarray) -> int:
    return int(np.prod(rows.shape[1:])) if rows.ndim > 1 else 1


def _text_bytes(value: Any) -> int:
    """A text's UTF-8 size; a prompt's (``Prompted``) own estimate."""
    return len(value.encode("utf-8")) if isinstance(value, str) else int(value.size)
