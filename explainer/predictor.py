"""Talking to the predictor: what every protocol shares.

A predictor client scores rows. The protocol-specific part (``score``: one call;
``load_metadata``; ``ready``) lives in ``predictor_rest`` (Open Inference Protocol v2
and KServe v1 over REST) and ``predictor_grpc`` (v2 over gRPC). This module owns the
rest: splitting rows into calls of at most ``max_batch`` rows with a bounded number in
flight, finding out once which output to explain (probabilities where offered), and
reporting every call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from explainer.coalescing import Coalescer
from explainer.errors import PredictorFailed, PredictorUnavailable

log = logging.getLogger(__name__)

PROBA_OUTPUT = "predict_proba"
# Told of every inference call: (seconds, rows, succeeded).
CallObserver = Callable[[float, int, bool], None]


@dataclass(frozen=True)
class ModelMetadata:
    """What the predictor says about the model (all optional in the protocol).

    A model may declare one input tensor per feature (each one column wide): then those
    tensors' names are the feature names, and rows travel as one tensor per column.
    """

    input_name: str | None = None
    input_datatype: str | None = None
    features: int | None = None
    outputs: tuple[str, ...] = ()
    feature_names: tuple[str, ...] | None = None  # one input tensor per feature
    output_widths: dict[str, int | None] = field(default_factory=dict)  # declared columns

    @classmethod
    def from_v2(cls, body: dict[str, Any]) -> ModelMetadata:
        inputs = body.get("inputs") or []
        declared = [o for o in body.get("outputs") or [] if o.get("name")]
        outputs = tuple(str(o["name"]) for o in declared)
        widths = {str(o["name"]): _width(o.get("shape")) for o in declared}
        if not inputs:
            return cls(outputs=outputs, output_widths=widths)
        first = inputs[0]
        if len(inputs) > 1 and all(_width(i.get("shape")) == 1 for i in inputs):
            return cls(
                input_datatype=first.get("datatype"),
                features=len(inputs),
                outputs=outputs,
                feature_names=tuple(str(i.get("name")) for i in inputs),
                output_widths=widths,
            )
        width = _width(first.get("shape"))
        return cls(
            input_name=first.get("name"),
            input_datatype=first.get("datatype"),
            features=width if width and len(first.get("shape") or []) >= 2 else None,
            outputs=outputs,
            output_widths=widths,
        )

    def output_label(self, output: str | None) -> str | None:
        """The declared name of a one-column output (``output`` or, if None, the first)."""
        name = output if output is not None else (self.outputs[0] if self.outputs else None)
        return name if name is not None and self.output_widths.get(name) == 1 else None


def _width(shape: Any) -> int | None:
    """Columns per row of a declared tensor shape: [-1] and [-1, 1] are one column."""
    dims = [int(d) for d in shape or []]  # gRPC's JSON metadata has int64 strings
    if len(dims) == 1:
        return 1
    return dims[-1] if len(dims) >= 2 and dims[-1] > 0 else None


@dataclass
class PredictorConfig:
    base_url: str  # http(s)://host:port, or host:port for gRPC
    model_name: str
    datatype: str = "FP64"
    datatype_from_metadata: bool = True  # False when the datatype was set explicitly
    output: str | None = None  # None: predict_proba where offered, else the first output
    max_batch: int = 32_768
    max_concurrency: int = 4
    timeout: float = 60.0
    retries: int = 2
    ca_bundle: str | None = None
    binary: bool | None = None  # v2 REST binary tensor extension; None: where offered
    coalesce: bool = True  # concurrent requests' rows share calls (explainer.coalescing)
    coalesce_wait: float = 0.002  # seconds a partly filled call may wait for more rows


class Predictor(ABC):
    # Whether the protocol lets the client ask for an output by name (v1 does not).
    chooses_output = True

    def __init__(self, config: PredictorConfig, observe: CallObserver | None = None) -> None:
        self.config = config
        self.metadata = ModelMetadata()
        self.input_name = "input-0"
        self.columns: tuple[str, ...] | None = None  # one input tensor per feature
        self._observe = observe
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._output: str | None = config.output
        self._output_settled = config.output is not None or not self.chooses_output
        self.rows_sent = 0
        self.calls = 0
        self.bytes_sent = 0  # inference payloads on the wire, as the transport encoded them
        self.bytes_received = 0
        self._coalescer: Coalescer | None = None

    # ---- the protocol-specific part --------------------------------------------------------

    @abstractmethod
    async def score(self, rows: np.ndarray, output: str | None) -> np.ndarray:
        """One call: scores (n, K) float64 for rows (n, M). Raises ExplainerErrors."""

    @abstractmethod
    async def fetch_metadata(self) -> ModelMetadata:
        """The model's metadata, or an empty one if the protocol has none."""

    @abstractmethod
    async def ready(self) -> bool:
        """Whether the predictor says the model is ready; False if it cannot be asked."""

    async def close(self) -> None:
        """Release what the transport holds (subclasses extend this)."""
        if self._coalescer is not None:
            await self._coalescer.close()

    def rows_per_call(self, features: int) -> int:
        return self.config.max_batch

    # ---- shared --------------------------------------------------------------------------

    @property
    def output_name(self) -> str | None:
        return self._output

    @property
    def output_settled(self) -> bool:
        return self._output_settled

    async def load_metadata(self) -> ModelMetadata:
        self.metadata = await self.fetch_metadata()
        if self.metadata.input_name:
            self.input_name = self.metadata.input_name
        self.columns = self.metadata.feature_names
        if self.config.datatype_from_metadata and self.metadata.input_datatype in ("FP32", "FP64"):
            self.config.datatype = self.metadata.input_datatype
        if not self._output_settled and self.metadata.outputs:
            offered = PROBA_OUTPUT in self.metadata.outputs
            self._output = PROBA_OUTPUT if offered else None
            self._output_settled = True
        return self.metadata

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

    async def infer(self, rows: np.ndarray) -> np.ndarray:
        """Scores (n, K) float64 for rows (n, M), in as few calls as the limits allow."""
        if not self._output_settled:
            await self.settle_output(rows[:1])
        size = max(1, self.rows_per_call(rows.shape[1]))
        if self.config.coalesce:
            if self._coalescer is None or self._coalescer.max_rows != size:
                self._coalescer = Coalescer(
                    partial(self._call, output=self._output),
                    size,
                    self.config.max_concurrency,
                    self.config.coalesce_wait,
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
                scores = await self.score(rows, output)
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


class Scoring:
    """Arrays of rows scored as one stream of calls, cut over their concatenation: a
    few rows (LIME's) added after many (SHAP's) ride in the last call instead of paying
    a model's per-call cost on their own, whatever the timing, and the calls full of the
    first array's rows are on their way before the next array exists. Only a call that
    spans two arrays is copied. Each array's scores are ``await scoring.of(a)``, ready as
    soon as the calls holding its rows are answered; ``cancel`` drops the calls nobody
    will wait for."""

    def __init__(
        self,
        send: Callable[[np.ndarray], Awaitable[np.ndarray]],
        rows_per_call: Callable[[int], int],
    ) -> None:
        self._send = send
        self._rows_per_call = rows_per_call
        self._size = 0
        self._parts: list[np.ndarray] = []
        self._filled = 0
        self.calls: list[asyncio.Task[np.ndarray]] = []
        self.spans: list[list[tuple[int, int, int]]] = []  # per array: (call, start, stop)

    def add(self, rows: np.ndarray) -> int:
        """Queue ``rows`` (n, M), sending every call they fill; returns the array's index."""
        self._size = self._size or max(1, self._rows_per_call(rows.shape[1]))
        spans: list[tuple[int, int, int]] = []
        start = 0
        while start < rows.shape[0]:
            take = min(self._size - self._filled, rows.shape[0] - start)
            self._parts.append(rows[start : start + take])
            spans.append((len(self.calls), self._filled, self._filled + take))
            self._filled += take
            start += take
            if self._filled == self._size:
                self._flush()
        self.spans.append(spans)
        return len(self.spans) - 1

    def finish(self) -> None:
        """Send the last, partly filled call."""
        if self._parts:
            self._flush()

    def _flush(self) -> None:
        parts = self._parts
        task = asyncio.ensure_future(
            self._send(parts[0] if len(parts) == 1 else np.concatenate(parts))
        )
        task.add_done_callback(_retrieve)  # a failure is heard by whoever awaits it
        self.calls.append(task)
        self._parts, self._filled = [], 0

    async def of(self, a: int) -> np.ndarray:
        """Scores (n, K) for array ``a``, in its rows' order (after ``finish``)."""
        pieces = [(await self.calls[c])[lo:hi] for c, lo, hi in self.spans[a]]
        if not pieces:  # no rows: no scores
            return np.zeros((0, 0))
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def cancel(self) -> None:
        for task in self.calls:
            task.cancel()


def _retrieve(task: asyncio.Task[np.ndarray]) -> None:
    if not task.cancelled():
        task.exception()


def checked_scores(values: np.ndarray, n: int) -> np.ndarray:
    """Predictor output values → (n, K) finite float64, or a 502 saying what is wrong."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0 or values.size % n:
        raise PredictorFailed(f"predictor returned {values.size} values for {n} rows")
    scores = values.reshape(n, -1)
    if not np.isfinite(scores).all():
        raise PredictorFailed("predictor returned NaN or infinite scores")
    return scores


def unavailable(url: str, cause: str, attempts: int) -> PredictorUnavailable:
    return PredictorUnavailable(
        f"predictor at {url} is unreachable ({cause}) after {attempts} attempt(s)"
    )
