"""The predictor over the Open Inference Protocol's gRPC service
(``inference.GRPCInferenceService``, which MLServer, Triton and ModelMesh speak), through
tritonclient's asyncio client. Rows travel as raw little-endian tensor contents, and
calls are split to fit the server's message limit (4 MiB by default in MLServer and
Triton)."""

from __future__ import annotations

from typing import Any

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from explainer.datatypes import V2_TO_NUMPY
from explainer.errors import PredictorFailed, PredictorTimeout, PredictorUnavailable
from explainer.features import ColumnTensor
from explainer.predictor.metadata import ModelMetadata
from explainer.predictor.retry import Transient, with_retries
from explainer.predictor.transport import (
    TEXT_PARAMETERS,
    Layout,
    Transport,
    checked_scores,
    is_text,
    text_bytes,
    unavailable,
)

_CONTROL_TIMEOUT_SECONDS = 5.0
_MESSAGE_OVERHEAD_BYTES = 64 * 1024
# gRPC status → the HTTP status it corresponds to, for the 502 message and for telling
# "this output does not exist" (400) apart from other failures.
_UPSTREAM = {
    "StatusCode.INVALID_ARGUMENT": 400,
    "StatusCode.NOT_FOUND": 404,
    "StatusCode.RESOURCE_EXHAUSTED": 413,
    "StatusCode.UNIMPLEMENTED": 501,
    "StatusCode.INTERNAL": 500,
}


class GrpcV2(Transport):
    def __init__(
        self,
        address: str,
        model_name: str,
        *,
        timeout: float = 60.0,
        retries: int = 2,
        use_ssl: bool = False,
        ca_bundle: str | None = None,
        max_message_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        super().__init__(address, model_name)
        self.timeout = timeout
        self.retries = retries
        self._max_message_bytes = max_message_bytes
        self._client = InferenceServerClient(address, ssl=use_ssl, root_certificates=ca_bundle)

    async def close(self) -> None:
        await self._client.close()

    def rows_per_call(self, row_bytes: int) -> int:
        fit = (self._max_message_bytes - _MESSAGE_OVERHEAD_BYTES) // max(row_bytes, 1)
        return max(1, fit)

    async def fetch_metadata(self) -> ModelMetadata:
        try:
            body = await self._client.get_model_metadata(
                self.model_name, as_json=True, client_timeout=self._control_timeout
            )
        except InferenceServerException as exc:
            raise self._failure(exc) from None
        return ModelMetadata.from_v2(dict(body))

    async def ready(self) -> bool:
        try:
            return bool(
                await self._client.is_model_ready(
                    self.model_name, client_timeout=self._control_timeout
                )
            )
        except InferenceServerException:
            return False

    async def score(self, rows: np.ndarray, output: str | None, layout: Layout) -> np.ndarray:
        parameters = None
        if is_text(rows):  # one BYTES tensor of texts
            tensor = InferInput(layout.input_name, layout.text_shape(len(rows)), "BYTES")
            tensor._raw_content = text_bytes(rows)  # what set_data_from_numpy would store
            for key, value in TEXT_PARAMETERS.items():
                tensor._input.parameters[key].string_param = value
            tensors = [tensor]
            sent = len(tensor._raw_content)
        elif layout.columns is None:
            encoded = np.ascontiguousarray(rows, dtype=V2_TO_NUMPY[layout.datatype])
            tensors = [InferInput(layout.input_name, list(rows.shape), layout.datatype)]
            tensors[0].set_data_from_numpy(encoded)
            sent = encoded.nbytes
        else:  # one tensor per feature, read back as a table (MLServer's pandas codec)
            tensors = [_column(column, rows.shape[0]) for column in layout.tensors(rows, raw=True)]
            parameters = {"content_type": "pd"}
            sent = sum(len(t._get_content() or b"") for t in tensors)
        outputs = [InferRequestedOutput(output)] if output is not None else None

        async def attempt(seconds: float) -> Any:
            try:
                return await self._client.infer(
                    self.model_name,
                    tensors,
                    outputs=outputs,
                    client_timeout=seconds,
                    parameters=parameters,
                )
            except InferenceServerException as exc:
                failure = self._failure(exc)
                if isinstance(failure, PredictorUnavailable):
                    raise Transient(failure.message, failure) from None
                raise failure from None

        result = await with_retries(
            attempt, retries=self.retries, timeout=self.timeout, what="a gRPC call"
        )
        response = result.get_response()
        if not response.outputs:
            raise PredictorFailed("predictor answered with no output tensor")
        name = output if output is not None else response.outputs[0].name
        values = result.as_numpy(name)
        self.bytes_sent += sent
        self.bytes_received += 0 if values is None else values.nbytes
        if values is None:
            raise PredictorFailed(f"predictor answered without the output '{name}'")
        if values.dtype.kind not in "iuf":
            raise PredictorFailed(f"predictor output '{name}' is not numeric")
        return checked_scores(values, rows.shape[0])

    @property
    def _control_timeout(self) -> float:
        return max(self.timeout, _CONTROL_TIMEOUT_SECONDS)

    def _failure(
        self, exc: InferenceServerException
    ) -> PredictorFailed | PredictorUnavailable | PredictorTimeout:
        status = exc.status() or ""
        detail = (exc.message() or str(exc))[:300]
        if status == "StatusCode.UNAVAILABLE":
            return unavailable(self.base_url, detail, 1 + self.retries)
        if status == "StatusCode.DEADLINE_EXCEEDED":
            return PredictorTimeout(f"predictor did not answer within {self.timeout:g} s (gRPC)")
        upstream = _UPSTREAM.get(status)
        about = f" for model '{self.model_name}'" if upstream == 404 else ""
        return PredictorFailed(
            f"predictor answered {status.removeprefix('StatusCode.') or 'an error'}{about}: "
            f"{detail}",
            upstream_status=upstream,
        )


def _column(column: ColumnTensor, n: int) -> InferInput:
    """One feature's tensor. BYTES go as their v2 binary form built from the categories
    (``ColumnTensor.raw``: tritonclient's own serialiser loops over every value in
    Python), with the content type that makes MLServer decode them to str, not bytes."""
    tensor = InferInput(column.name, [n, 1], column.datatype)
    if column.raw is not None:
        tensor._raw_content = column.raw  # what set_data_from_numpy would have stored
    else:
        tensor.set_data_from_numpy(column.values.reshape(n, 1))
    for key, value in (column.parameters or {}).items():
        tensor._input.parameters[key].string_param = value
    return tensor
