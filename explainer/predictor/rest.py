"""The predictor over REST: the Open Inference Protocol (v2) and KServe v1.

One pooled aiohttp session; rows travel as one tensor per call, encoded by orjson
straight from numpy. Responses are read as bytes and never assumed to be JSON: MLServer
answers some errors in plain text. ``Accept-Encoding: identity`` because MLServer gzips
every response at level 9 otherwise, which costs more than it saves on a cluster network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import aiohttp
import numpy as np
import orjson

from explainer.datatypes import V2_TO_NUMPY
from explainer.errors import (
    PredictorError,
    PredictorFailed,
    PredictorTimeout,
    PredictorUnavailable,
)
from explainer.features import ColumnTensor
from explainer.predictor.metadata import ModelMetadata
from explainer.predictor.retry import Transient, with_retries
from explainer.predictor.transport import (
    TEXT_PARAMETERS,
    Layout,
    Transport,
    checked_scores,
    is_text,
    unavailable,
)

_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
# The v2 binary tensor data extension (Triton, KServe): a JSON header of this many bytes,
# then the tensors' raw little-endian bytes.
_JSON_LENGTH = "Inference-Header-Content-Length"
_BINARY_HEADERS = {"Content-Type": "application/octet-stream", "Accept-Encoding": "identity"}
BINARY_EXTENSION = "binary_tensor_data"
_TRANSIENT_STATUSES = frozenset({502, 503, 504})
_SLICE_BYTES = 4 * 1024 * 1024
# Metadata and readiness are small calls; a short inference timeout must not starve them.
_CONTROL_TIMEOUT_SECONDS = 5.0


class Answer(NamedTuple):
    status: int
    body: bytes
    json_length: int | None  # binary extension: the JSON header's length; else None


def _length(header: str | None, size: int) -> int | None:
    try:
        length = int(header) if header is not None else None
    except ValueError:
        return None
    return length if length is not None and 0 <= length <= size else None


class RestTransport(Transport):
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        model_name: str,
        *,
        timeout: float = 60.0,
        retries: int = 2,
        binary: bool | None = None,
    ) -> None:
        super().__init__(base_url, model_name)
        self._session = session
        self.timeout = timeout
        self.retries = retries
        self.binary_setting = binary  # None: where offered
        self.binary = bool(binary)  # v2 binary tensor data extension in use

    async def request(
        self,
        method: str,
        url: str,
        payload: bytes | None = None,
        *,
        control: bool = False,
        retries: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """(status, body). Transient faults — a refused or reset connection, a body cut
        off mid-way, a 502/503/504 from a gateway or a restarting server — are retried
        (``retry.with_retries``): the whole call ends within the timeout."""
        timeout = max(self.timeout, _CONTROL_TIMEOUT_SECONDS) if control else self.timeout
        attempts = 1 + (self.retries if retries is None else retries)

        async def attempt(seconds: float) -> Answer:
            try:
                async with self._session.request(
                    method,
                    url,
                    data=None if payload is None else _slices(payload),
                    headers=headers or _HEADERS,
                    timeout=aiohttp.ClientTimeout(total=seconds),
                ) as response:
                    status, body = response.status, await response.read()
                    json_length = response.headers.get(_JSON_LENGTH)
            except TimeoutError:
                raise PredictorTimeout(
                    f"predictor did not answer {method} {url} within {timeout:g} s"
                ) from None
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
                cause = type(exc).__name__
                raise Transient(cause, unavailable(self.base_url, cause, attempts)) from None
            if status in _TRANSIENT_STATUSES:
                raise Transient(f"HTTP {status}", self.failure(status, body))
            return Answer(status, body, _length(json_length, len(body)))

        return await with_retries(
            attempt, retries=attempts - 1, timeout=timeout, what=f"{method} {url}"
        )

    def failure(self, status: int, body: bytes) -> PredictorFailed | PredictorUnavailable:
        detail = _error_detail(body)
        if status == 503:
            return PredictorUnavailable(f"predictor is not ready (503): {detail}")
        about = f" for model '{self.model_name}'" if status == 404 else ""
        return PredictorFailed(
            f"predictor answered {status}{about}: {detail}", upstream_status=status
        )

    @property
    def model_url(self) -> str:
        raise NotImplementedError

    async def model_document(self) -> bytes:
        """GET the model's own URL (v2 metadata; v1 status); a non-200 answer is an error."""
        status, body, _ = await self.request("GET", self.model_url, control=True)
        if status != 200:
            raise self.failure(status, body)
        return body

    async def probe(self, url: str) -> Answer | None:
        """One GET with no retries, for readiness: None if the predictor cannot be asked."""
        try:
            return await self.request("GET", url, control=True, retries=0)
        except PredictorError:
            return None


def encode_rows(rows: np.ndarray, layout: Layout) -> np.ndarray:
    """Rows at the layout's datatype (FP32 rounds them, as the predictor would)."""
    return np.ascontiguousarray(rows, dtype=V2_TO_NUMPY[layout.datatype])


class V2Rest(RestTransport):
    """Open Inference Protocol (v2) REST: ``/v2/models/<m>/infer``."""

    @property
    def model_url(self) -> str:
        return f"{self.base_url}/v2/models/{self.model_name}"

    async def fetch_metadata(self) -> ModelMetadata:
        body = await self.model_document()
        if self.binary_setting is None:  # auto: where the server lists the extension
            self.binary = await self._offers_binary()
        try:
            return ModelMetadata.from_v2(orjson.loads(body))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            return ModelMetadata()

    async def _offers_binary(self) -> bool:
        """Whether ``GET /v2`` lists the binary tensor data extension (Triton does;
        MLServer lists none; KServe supports it without listing it: set it explicitly)."""
        answer = await self.probe(f"{self.base_url}/v2")
        if answer is None or answer.status != 200:
            return False
        try:
            extensions = orjson.loads(answer.body).get("extensions") or []
        except (orjson.JSONDecodeError, AttributeError):
            return False
        return BINARY_EXTENSION in extensions

    async def ready(self) -> bool:
        answer = await self.probe(f"{self.model_url}/ready")
        return answer is not None and answer[0] == 200

    async def score(self, rows: np.ndarray, output: str | None, layout: Layout) -> np.ndarray:
        if is_text(rows):  # one BYTES tensor of texts
            text = {
                "name": layout.input_name,
                "shape": layout.text_shape(len(rows)),
                "datatype": "BYTES",
                "data": rows.tolist(),
                "parameters": TEXT_PARAMETERS,
            }
            return await self._post({"inputs": [text]}, rows.shape[0], output)
        if self.binary and layout.columns is None:
            encoded = encode_rows(rows, layout)
            return await self._score_binary(encoded, output, layout)
        request: dict[str, Any]
        if layout.columns is None:
            encoded = encode_rows(rows, layout)
            tensor = {
                "name": layout.input_name,
                "shape": list(rows.shape),
                "data": encoded.reshape(-1),
            }
            request = {"inputs": [{**tensor, "datatype": layout.datatype}]}
        else:  # one tensor per feature, read back as a table (MLServer's pandas codec)
            request = {
                "inputs": [_column(tensor, rows.shape[0]) for tensor in layout.tensors(rows)],
                "parameters": {"content_type": "pd"},
            }
        return await self._post(request, rows.shape[0], output)

    async def _post(self, request: dict[str, Any], n: int, output: str | None) -> np.ndarray:
        if output is not None:
            request["outputs"] = [{"name": output}]
        payload = orjson.dumps(request, option=orjson.OPT_SERIALIZE_NUMPY)
        status, body, _ = await self.request("POST", f"{self.model_url}/infer", payload)
        self.bytes_sent += len(payload)
        self.bytes_received += len(body)
        if status != 200:
            raise self.failure(status, body)
        return _v2_scores(body, n, output)

    async def _score_binary(
        self, encoded: np.ndarray, output: str | None, layout: Layout
    ) -> np.ndarray:
        """One call with the binary tensor data extension: raw bytes both ways."""
        raw = encoded.astype(encoded.dtype.newbyteorder("<"), copy=False).tobytes()
        request: dict[str, Any] = {
            "inputs": [
                {
                    "name": layout.input_name,
                    "shape": list(encoded.shape),
                    "datatype": layout.datatype,
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
        }
        if output is not None:
            request["outputs"] = [{"name": output, "parameters": {"binary_data": True}}]
        else:
            request["parameters"] = {"binary_data_output": True}
        header = orjson.dumps(request)
        headers = {**_BINARY_HEADERS, _JSON_LENGTH: str(len(header))}
        answer = await self.request(
            "POST", f"{self.model_url}/infer", header + raw, headers=headers
        )
        self.bytes_sent += len(header) + len(raw)
        self.bytes_received += len(answer.body)
        if answer.status != 200:
            raise self.failure(answer.status, answer.body)
        # json_length is None when the server answered in plain JSON after all.
        return _v2_scores(answer.body, encoded.shape[0], output, answer.json_length)


class V1Rest(RestTransport):
    """KServe v1 REST: ``/v1/models/<m>:predict``, ``instances`` → ``predictions``.
    v1 has no metadata and no output selection: the model's own output is explained."""

    chooses_output = False

    @property
    def model_url(self) -> str:
        return f"{self.base_url}/v1/models/{self.model_name}"

    async def fetch_metadata(self) -> ModelMetadata:
        await self.model_document()
        return ModelMetadata()

    async def ready(self) -> bool:
        answer = await self.probe(self.model_url)
        if answer is None:
            return False
        status, body, _ = answer
        try:
            return status == 200 and bool(orjson.loads(body).get("ready", True))
        except (orjson.JSONDecodeError, AttributeError):
            return False

    async def score(self, rows: np.ndarray, output: str | None, layout: Layout) -> np.ndarray:
        if is_text(rows):  # instances of strings
            instances: Any = rows.tolist()
        elif layout.schema is not None and layout.schema.mixed:  # rows of mixed JSON values
            instances = layout.schema.values(rows)
        else:
            instances = encode_rows(rows, layout)
        payload = orjson.dumps({"instances": instances}, option=orjson.OPT_SERIALIZE_NUMPY)
        status, body, _ = await self.request("POST", f"{self.model_url}:predict", payload)
        self.bytes_sent += len(payload)
        self.bytes_received += len(body)
        if status != 200:
            raise self.failure(status, body)
        try:
            predictions = orjson.loads(body)["predictions"]
            values = np.asarray(predictions, dtype=np.float64)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise PredictorFailed(
                "predictor answered 200 with a body that is not a v1 prediction response"
            ) from None
        return checked_scores(values, rows.shape[0])


def _column(tensor: ColumnTensor, n: int) -> dict[str, Any]:
    """One feature's v2 tensor as JSON (strings as a list: orjson writes no object array)."""
    data = tensor.values.tolist() if tensor.values.dtype == object else tensor.values
    body: dict[str, Any] = {
        "name": tensor.name,
        "shape": [n, 1],
        "datatype": tensor.datatype,
        "data": data,
    }
    if tensor.parameters:
        body["parameters"] = tensor.parameters
    return body


async def _slices(payload: bytes) -> AsyncIterator[memoryview]:
    """Stream a large body in slices, so one huge write never holds the event loop."""
    view = memoryview(payload)
    for start in range(0, len(view), _SLICE_BYTES):
        yield view[start : start + _SLICE_BYTES]


def _error_detail(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and "error" in parsed:
            return str(parsed["error"])[:300]
    except orjson.JSONDecodeError:
        pass
    text = body.decode("utf-8", "replace").strip()
    return text[:300] or "(empty body)"


def _v2_scores(
    body: bytes, n: int, output: str | None, json_length: int | None = None
) -> np.ndarray:
    """Scores from a v2 inference response: the output asked for (else the first). With
    the binary extension (``json_length``), outputs carrying ``binary_data_size`` have
    their raw little-endian bytes after the JSON header, in the order it lists them."""
    header = body if json_length is None else body[:json_length]
    try:
        outputs = orjson.loads(header)["outputs"]
        offsets, offset = [], len(header)
        for tensor in outputs:
            offsets.append(offset)
            offset += int((tensor.get("parameters") or {}).get("binary_data_size", 0))
        names = [o.get("name") for o in outputs]
        index = names.index(output) if output is not None and output in names else 0
        tensor = outputs[index]
        datatype = tensor.get("datatype", "FP64")
        if datatype not in V2_TO_NUMPY:
            raise PredictorFailed(
                f"predictor output '{tensor.get('name')}' is {datatype}, not numeric"
            )
        size = int((tensor.get("parameters") or {}).get("binary_data_size", 0))
        if json_length is None or size == 0:
            values = np.asarray(tensor["data"], dtype=np.float64)
        else:
            dtype = np.dtype(V2_TO_NUMPY[datatype]).newbyteorder("<")
            raw = body[offsets[index] : offsets[index] + size]
            if len(raw) != size or size % dtype.itemsize:
                raise ValueError("binary output cut short")
            values = np.frombuffer(raw, dtype=dtype)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise PredictorFailed(
            "predictor answered 200 with a body that is not a v2 inference response"
        ) from None
    return checked_scores(values, n)
