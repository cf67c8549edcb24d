"""The predictor over the Open Inference Protocol's gRPC service
(``inference.GRPCInferenceService``, which MLServer, Triton and ModelMesh speak), through
tritonclient's asyncio client. Rows travel as raw little-endian tensor contents, and
calls are split to fit the server's message limit (4 MiB by default in MLServer and
Triton)."""

from __future__ import annotations

import asyncio

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from explainer.datatypes import V2_TO_NUMPY
from explainer.errors import PredictorFailed, PredictorTimeout, PredictorUnavailable
from explainer.predictor import (
    CallObserver,
    ModelMetadata,
    Predictor,
    PredictorConfig,
    checked_scores,
    unavailable,
)

_RETRY_BASE_SECONDS = 0.05
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


class GrpcV2Predictor(Predictor):
    def __init__(
        self,
        config: PredictorConfig,
        observe: CallObserver | None = None,
        *,
        use_ssl: bool = False,
        max_message_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        super().__init__(config, observe)
        self._max_message_bytes = max_message_bytes
        self._client = InferenceServerClient(
            config.base_url, ssl=use_ssl, root_certificates=config.ca_bundle
        )

    async def close(self) -> None:
        await super().close()
        await self._client.close()

    def rows_per_call(self, features: int) -> int:
        itemsize = V2_TO_NUMPY[self.config.datatype].itemsize
        fit = (self._max_message_bytes - _MESSAGE_OVERHEAD_BYTES) // (features * itemsize)
        return max(1, min(self.config.max_batch, fit))

    async def fetch_metadata(self) -> ModelMetadata:
        try:
            body = await self._client.get_model_metadata(
                self.config.model_name, as_json=True, client_timeout=self._control_timeout
            )
        except InferenceServerException as exc:
            raise self._failure(exc) from None
        return ModelMetadata.from_v2(dict(body))

    async def ready(self) -> bool:
        try:
            return bool(
                await self._client.is_model_ready(
                    self.config.model_name, client_timeout=self._control_timeout
                )
            )
        except InferenceServerException:
            return False

    async def score(self, rows: np.ndarray, output: str | None) -> np.ndarray:
        encoded = np.ascontiguousarray(rows, dtype=V2_TO_NUMPY[self.config.datatype])
        parameters = None
        if self.columns is None:
            tensors = [InferInput(self.input_name, list(rows.shape), self.config.datatype)]
            tensors[0].set_data_from_numpy(encoded)
        else:  # one tensor per feature, read back as a table (MLServer's pandas codec)
            tensors = []
            for j, name in enumerate(self.columns):
                tensor = InferInput(name, [rows.shape[0], 1], self.config.datatype)
                tensor.set_data_from_numpy(np.ascontiguousarray(encoded[:, j : j + 1]))
                tensors.append(tensor)
            parameters = {"content_type": "pd"}
        outputs = [InferRequestedOutput(output)] if output is not None else None
        attempts = 1 + self.config.retries
        for attempt in range(attempts):
            try:
                result = await self._client.infer(
                    self.config.model_name,
                    tensors,
                    outputs=outputs,
                    client_timeout=self.config.timeout,
                    parameters=parameters,
                )
                break
            except InferenceServerException as exc:
                failure = self._failure(exc)
                if not isinstance(failure, PredictorUnavailable) or attempt + 1 == attempts:
                    raise failure from None
                await asyncio.sleep(_RETRY_BASE_SECONDS * 2**attempt)
        response = result.get_response()
        if not response.outputs:
            raise PredictorFailed("predictor answered with no output tensor")
        name = output if output is not None else response.outputs[0].name
        values = result.as_numpy(name)
        self.bytes_sent += encoded.nbytes
        self.bytes_received += 0 if values is None else values.nbytes
        if values is None:
            raise PredictorFailed(f"predictor answered without the output '{name}'")
        if values.dtype.kind not in "iuf":
            raise PredictorFailed(f"predictor output '{name}' is not numeric")
        return checked_scores(values, rows.shape[0])

    @property
    def _control_timeout(self) -> float:
        return max(self.config.timeout, _CONTROL_TIMEOUT_SECONDS)

    def _failure(
        self, exc: InferenceServerException
    ) -> PredictorFailed | PredictorUnavailable | PredictorTimeout:
        status = exc.status() or ""
        detail = (exc.message() or str(exc))[:300]
        if status == "StatusCode.UNAVAILABLE":
            return unavailable(self.config.base_url, detail, 1 + self.config.retries)
        if status == "StatusCode.DEADLINE_EXCEEDED":
            return PredictorTimeout(
                f"predictor did not answer within {self.config.timeout:g} s (gRPC)"
            )
        upstream = _UPSTREAM.get(status)
        about = f" for model '{self.config.model_name}'" if upstream == 404 else ""
        return PredictorFailed(
            f"predictor answered {status.removeprefix('StatusCode.') or 'an error'}{about}: "
            f"{detail}",
            upstream_status=upstream,
        )
