"""Talking to the predictor over the Open Inference Protocol (v2) REST API.

One pooled aiohttp session; rows travel as one flat tensor per call, encoded by orjson
straight from numpy, split into calls of at most ``max_batch`` rows with a bounded number
in flight. Responses are read as bytes and never assumed to be JSON: MLServer answers
some errors in plain text. ``Accept-Encoding: identity`` because MLServer gzips every
response at level 9 otherwise, which costs more than the transfer it saves on loopback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import orjson

from explainer.datatypes import ROW_DATATYPES, V2_TO_NUMPY
from explainer.errors import PredictorFailed, PredictorTimeout, PredictorUnavailable

log = logging.getLogger(__name__)

PROBA_OUTPUT = "predict_proba"
_JSON = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
_RETRY_BASE_SECONDS = 0.05
_SLICE_BYTES = 4 * 1024 * 1024
# Metadata and readiness are small calls; a short inference timeout must not starve them.
_CONTROL_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ModelMetadata:
    """What the predictor says about the model (all optional in the protocol)."""

    input_name: str | None = None
    input_datatype: str | None = None
    features: int | None = None
    outputs: tuple[str, ...] = ()

    @classmethod
    def from_v2(cls, body: dict[str, Any]) -> ModelMetadata:
        inputs = body.get("inputs") or []
        outputs = tuple(str(o.get("name")) for o in body.get("outputs") or [] if o.get("name"))
        if not inputs:
            return cls(outputs=outputs)
        first = inputs[0]
        shape = first.get("shape") or []
        features = int(shape[-1]) if len(shape) >= 2 and int(shape[-1]) > 0 else None
        return cls(
            input_name=first.get("name"),
            input_datatype=first.get("datatype"),
            features=features,
            outputs=outputs,
        )


@dataclass
class PredictorConfig:
    base_url: str
    model_name: str
    datatype: str = "FP64"
    datatype_from_metadata: bool = True  # False when the datatype was set explicitly
    output: str | None = None  # None: predict_proba where offered, else the first output
    max_batch: int = 32_768
    max_concurrency: int = 4
    timeout: float = 60.0
    retries: int = 2


@dataclass
class _OutputChoice:
    """Which output to ask for; settled by metadata or by the first answer."""

    name: str | None = None
    settled: bool = False


# Told of every inference call: (seconds, rows, succeeded).
CallObserver = Callable[[float, int, bool], None]


class V2Predictor:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: PredictorConfig,
        observe: CallObserver | None = None,
    ) -> None:
        self._session = session
        self.config = config
        self._observe = observe
        self.metadata = ModelMetadata()
        self._input_name = "input-0"
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._output = _OutputChoice()
        if config.output is not None:
            self._output = _OutputChoice(name=config.output, settled=True)
        self.rows_sent = 0
        self.calls = 0

    @property
    def model_url(self) -> str:
        return f"{self.config.base_url}/v2/models/{self.config.model_name}"

    @property
    def output_name(self) -> str | None:
        return self._output.name

    async def load_metadata(self) -> ModelMetadata:
        """Read the model's v2 metadata, if the predictor offers it."""
        timeout = max(self.config.timeout, _CONTROL_TIMEOUT_SECONDS)
        status, body = await self._request("GET", self.model_url, None, timeout)
        if status != 200:
            raise _failure(status, body, self.config.model_name)
        try:
            self.metadata = ModelMetadata.from_v2(orjson.loads(body))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            log.warning("predictor metadata is not v2 JSON; continuing without it")
            return self.metadata
        if self.metadata.input_name:
            self._input_name = self.metadata.input_name
        if self.config.datatype_from_metadata and self.metadata.input_datatype in ROW_DATATYPES:
            self.config.datatype = self.metadata.input_datatype
        if not self._output.settled and self.metadata.outputs:
            offered = PROBA_OUTPUT in self.metadata.outputs
            self._output = _OutputChoice(name=PROBA_OUTPUT if offered else None, settled=True)
        return self.metadata

    async def ready(self) -> bool:
        try:
            status, _ = await self._request("GET", f"{self.model_url}/ready", None, 2.0, retries=0)
        except (PredictorUnavailable, PredictorTimeout):
            return False
        return status == 200

    async def infer(self, rows: np.ndarray) -> np.ndarray:
        """Scores (n, K) float64 for rows (n, M), in as few calls as ``max_batch`` allows."""
        if not self._output.settled:
            await self.settle_output(rows[:1])
        size = self.config.max_batch
        chunks = [rows[i : i + size] for i in range(0, rows.shape[0], size)]
        results = await asyncio.gather(*(self._infer_call(chunk) for chunk in chunks))
        return results[0] if len(results) == 1 else np.concatenate(results)

    @property
    def output_settled(self) -> bool:
        return self._output.settled

    async def settle_output(self, probe: np.ndarray) -> None:
        """No metadata named the outputs: ask for probabilities once, and keep the
        model's default output if the predictor refuses that output name."""
        try:
            await self._infer_call(probe, output=PROBA_OUTPUT)
            self._output = _OutputChoice(name=PROBA_OUTPUT, settled=True)
        except PredictorFailed as exc:
            if exc.upstream_status not in (400, 422):
                raise
            self._output = _OutputChoice(name=None, settled=True)
        log.info("explaining predictor output %s", self._output.name or "(model default)")

    async def _infer_call(self, rows: np.ndarray, output: str | None = None) -> np.ndarray:
        output = output if output is not None else self._output.name
        dtype = V2_TO_NUMPY[self.config.datatype]
        request: dict[str, Any] = {
            "inputs": [
                {
                    "name": self._input_name,
                    "shape": list(rows.shape),
                    "datatype": self.config.datatype,
                    "data": np.ascontiguousarray(rows, dtype=dtype).reshape(-1),
                }
            ]
        }
        if output is not None:
            request["outputs"] = [{"name": output}]
        payload = orjson.dumps(request, option=orjson.OPT_SERIALIZE_NUMPY)
        async with self._slots:
            start = time.perf_counter()
            try:
                status, body = await self._request(
                    "POST", f"{self.model_url}/infer", payload, self.config.timeout
                )
                if status != 200:
                    raise _failure(status, body, self.config.model_name)
                scores = _scores(body, rows.shape[0], output)
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

    async def _request(
        self,
        method: str,
        url: str,
        payload: bytes | None,
        timeout: float,
        retries: int | None = None,
    ) -> tuple[int, bytes]:
        attempts = 1 + (self.config.retries if retries is None else retries)
        for attempt in range(attempts):
            try:
                async with self._session.request(
                    method,
                    url,
                    data=None if payload is None else _slices(payload),
                    headers=_JSON,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as response:
                    return response.status, await response.read()
            except TimeoutError:
                raise PredictorTimeout(
                    f"predictor did not answer {method} {url} within {timeout:g} s"
                ) from None
            except (aiohttp.ClientConnectionError, OSError) as exc:
                if attempt + 1 == attempts:
                    raise PredictorUnavailable(
                        f"predictor at {self.config.base_url} is unreachable "
                        f"({type(exc).__name__}) after {attempts} attempt(s)"
                    ) from None
                await asyncio.sleep(_RETRY_BASE_SECONDS * 2**attempt)
        raise AssertionError("unreachable")


async def _slices(payload: bytes) -> AsyncIterator[memoryview]:
    """Stream a large body in slices, so one huge write never holds the event loop."""
    view = memoryview(payload)
    for start in range(0, len(view), _SLICE_BYTES):
        yield view[start : start + _SLICE_BYTES]


def _failure(status: int, body: bytes, model: str) -> PredictorFailed | PredictorUnavailable:
    detail = _error_detail(body)
    if status == 503:
        return PredictorUnavailable(f"predictor is not ready (503): {detail}")
    about = f" for model '{model}'" if status == 404 else ""
    return PredictorFailed(f"predictor answered {status}{about}: {detail}", upstream_status=status)


def _error_detail(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and "error" in parsed:
            return str(parsed["error"])[:300]
    except orjson.JSONDecodeError:
        pass
    text = body.decode("utf-8", "replace").strip()
    return text[:300] or "(empty body)"


def _scores(body: bytes, n: int, output: str | None) -> np.ndarray:
    try:
        parsed = orjson.loads(body)
        outputs = parsed["outputs"]
        chosen = next((o for o in outputs if o.get("name") == output), None) if output else None
        tensor = chosen or outputs[0]
        datatype = tensor.get("datatype", "FP64")
        if datatype not in V2_TO_NUMPY:
            raise PredictorFailed(
                f"predictor output '{tensor.get('name')}' is {datatype}, not numeric"
            )
        values = np.asarray(tensor["data"], dtype=np.float64).reshape(-1)
    except PredictorFailed:
        raise
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise PredictorFailed(
            "predictor answered 200 with a body that is not a v2 inference response"
        ) from None
    if values.size == 0 or values.size % n:
        raise PredictorFailed(f"predictor returned {values.size} values for {n} rows")
    scores = values.reshape(n, -1)
    if not np.isfinite(scores).all():
        raise PredictorFailed("predictor returned NaN or infinite scores")
    return scores
