"""KServe's own Python model server (``kserve`` on PyPI) serving a scikit-learn model as
kserve-sklearnserver does — ``predict``, or ``predict_proba`` when PREDICT_PROBA=true —
bound to loopback. Over v2 it answers the output asked for, in JSON or with the binary
tensor data extension as the request says. Run with the interpreter of the kserve
virtual environment:

    MODEL_NAME=credit MODEL_PATH=model.joblib HTTP_PORT=8085 python tests/kserve_server.py
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import kserve
import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.protocol.rest import server as rest_server
from kserve.utils.utils import get_predict_input

_init = rest_server.RESTServer.__init__


def _loopback_init(self: Any, *args: Any, **kwargs: Any) -> None:
    # KServe binds 0.0.0.0; uvicorn reads the host only when it starts, so set it here.
    _init(self, *args, **kwargs)
    self.config.host = "127.0.0.1"


rest_server.RESTServer.__init__ = _loopback_init  # type: ignore[method-assign]


class SKLearnModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        self._model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        if isinstance(payload, InferRequest):  # v2, JSON or binary tensor data
            return self.predict_v2(payload)
        instances = get_predict_input(payload)  # as kserve-sklearnserver reads v1
        if os.environ.get("PREDICT_PROBA", "false").lower() == "true":
            result = self._model.predict_proba(instances)
        else:
            result = self._model.predict(instances)
        return {"predictions": result.tolist()}

    def predict_v2(self, request: InferRequest) -> InferResponse:
        rows = np.asarray(request.inputs[0].as_numpy(), dtype=np.float64)
        asked = [o.name for o in request.request_outputs or []]
        if "predict_proba" in asked:
            name, scores = "predict_proba", self._model.predict_proba(rows)
        else:
            name, scores = "predict", self._model.predict(rows)
        output = InferOutput(name=name, shape=list(scores.shape), datatype="FP64")
        output.set_data_from_numpy(np.asarray(scores, dtype=np.float64))
        return InferResponse(
            response_id=request.id or "",
            model_name=self.name,
            infer_outputs=[output],
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )


if __name__ == "__main__":
    model = SKLearnModel(os.environ["MODEL_NAME"], os.environ["MODEL_PATH"])
    kserve.ModelServer(http_port=int(os.environ["HTTP_PORT"]), enable_grpc=False, workers=1).start(
        [model]
    )
