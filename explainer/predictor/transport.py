"""A transport: one protocol's way of making a call (``rest``: v2 and v1; ``grpc``: v2;
``local``: a model in-process). The client (``client.PredictorClient``) owns the policy
— batching, coalescing, concurrency, which output to explain — and a transport only
makes one call at a time when asked, with its retries (``retry``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from explainer.datatypes import V2_TO_NUMPY
from explainer.errors import PredictorFailed, PredictorUnavailable
from explainer.features import ColumnTensor, Schema
from explainer.predictor.metadata import ModelMetadata


@dataclass(frozen=True)
class Layout:
    """How rows travel: as one tensor ``input_name`` of ``datatype``, or (``columns``)
    one tensor per feature, read back as a table (MLServer's pandas codec) — with a
    ``schema`` of mixed features, each in the model's own type (``explainer.features``;
    ``datatype`` is then the continuous features')."""

    input_name: str = "input-0"
    datatype: str = "FP64"
    columns: tuple[str, ...] | None = None
    schema: Schema | None = None
    text_rank: int = 1  # texts travel as one BYTES tensor of shape [n] (1) or [n, 1] (2)

    def text_shape(self, n: int) -> list[int]:
        return [n] if self.text_rank == 1 else [n, 1]

    def row_bytes(self, features: int) -> int:
        """The most bytes one row takes on the wire, in binary form."""
        itemsize = V2_TO_NUMPY[self.datatype].itemsize
        if self.schema is None or not self.schema.mixed:
            return features * itemsize
        return sum(f.wire_bytes(itemsize) for f in self.schema.features)

    def tensors(self, rows: np.ndarray, raw: bool = False) -> list[ColumnTensor]:
        """One tensor per column (``columns`` is set); ``raw``: with BYTES tensors' v2
        binary form."""
        assert self.columns is not None
        if self.schema is not None and self.schema.mixed:
            return self.schema.tensors(rows, self.datatype, raw)
        encoded = np.ascontiguousarray(rows, dtype=V2_TO_NUMPY[self.datatype])
        return [
            ColumnTensor(name, self.datatype, np.ascontiguousarray(encoded[:, j]))
            for j, name in enumerate(self.columns)
        ]


class Transport(ABC):
    # Whether the protocol lets the client ask for an output by name (v1 does not).
    chooses_output = True
    # Whether the transport has an output of its own choosing (a local model's method).
    default_output: str | None = None
    # Whether the predictor is a generative model, explained by prompts (openai).
    generative = False

    def __init__(self, base_url: str, model_name: str) -> None:
        self.base_url = base_url
        self.model_name = model_name
        self.bytes_sent = 0  # inference payloads on the wire, as the transport encoded them
        self.bytes_received = 0

    @abstractmethod
    async def score(self, rows: np.ndarray, output: str | None, layout: Layout) -> np.ndarray:
        """One call: scores (n, K) float64 for rows (n, M). Raises ExplainerErrors."""

    @abstractmethod
    async def fetch_metadata(self) -> ModelMetadata:
        """The model's metadata, or an empty one if the protocol has none."""

    @abstractmethod
    async def ready(self) -> bool:
        """Whether the predictor says the model is ready; False if it cannot be asked."""

    async def close(self) -> None:
        """Release what the transport holds (most hold nothing of their own)."""
        return None

    def rows_per_call(self, row_bytes: int) -> int | None:
        """The most rows of ``row_bytes`` one call can carry, if the protocol limits it
        (gRPC's message)."""
        return None


RESPONSE_OUTPUT = "response"  # a generative model's one output: log p(response | prompt)


class Generative(Protocol):
    """What a transport of a generative model (``generative = True``) does besides
    scoring: ``explainer.predictor.openai``."""

    async def generate(self, prompt: str | tuple[tuple[str, str], ...], max_tokens: int) -> str: ...

    async def check_length(
        self, prompt: str | tuple[tuple[str, str], ...], response: str
    ) -> int: ...


TEXT_PARAMETERS = {"content_type": "str"}  # MLServer's StringCodec: BYTES decoded to str


def is_text(rows: np.ndarray) -> bool:
    """Whether ``rows`` are texts (an (n,) object array of str), not tabular rows."""
    return rows.ndim == 1 and rows.dtype == object


def text_bytes(texts: np.ndarray) -> bytes:
    """Texts in the v2 binary BYTES form: each one's UTF-8 length, then its bytes."""
    return b"".join(
        len(encoded).to_bytes(4, "little") + encoded
        for encoded in (t.encode("utf-8") for t in texts.tolist())
    )


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
