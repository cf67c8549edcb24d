"""A small in-process predictor for ``explainer demo``: one scikit-learn model served
over the Open Inference Protocol (v2 REST) and KServe v1, answering like MLServer's
scikit-learn runtime (``predict`` by default, ``predict_proba`` when asked).

It exists so the demo needs nothing but this package; the test suite uses a real
MLServer instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from aiohttp import web

_OUTPUTS = ("predict", "predict_proba")


def predictor_app(model: Any, name: str, features: int) -> web.Application:
    async def metadata(request: web.Request) -> web.Response:
        _check(request, name)
        return _json(
            200,
            {
                "name": name,
                "platform": "sklearn",
                "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, features]}],
                "outputs": [
                    {"name": output, "datatype": "FP64", "shape": [-1, -1]} for output in _OUTPUTS
                ],
            },
        )

    async def ready(request: web.Request) -> web.Response:
        _check(request, name)
        return _json(200, {"name": name, "ready": True})

    async def infer(request: web.Request) -> web.Response:
        _check(request, name)
        body = orjson.loads(await request.read())
        tensor = body["inputs"][0]
        rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        wanted = [o["name"] for o in body.get("outputs") or [{"name": "predict"}]]
        outputs = []
        for output in wanted:
            if output not in _OUTPUTS:
                return _json(400, {"error": f"output {output} is not supported"})
            values = np.asarray(getattr(model, output)(rows), dtype=np.float64)
            outputs.append(
                {
                    "name": output,
                    "shape": list(values.shape),
                    "datatype": "FP64",
                    "data": values.reshape(-1),
                }
            )
        return _json(200, {"model_name": name, "outputs": outputs})

    async def predict_v1(request: web.Request) -> web.Response:
        _check(request, name)
        rows = np.asarray(orjson.loads(await request.read())["instances"], dtype=np.float64)
        return _json(200, {"predictions": model.predict(rows)})

    app = web.Application(client_max_size=512 * 1024 * 1024)
    app.router.add_get("/v2/models/{model}", metadata)
    app.router.add_get("/v2/models/{model}/ready", ready)
    app.router.add_post("/v2/models/{model}/infer", infer)
    app.router.add_post("/v1/models/{model}:predict", predict_v1)
    return app


def _check(request: web.Request, name: str) -> None:
    if request.match_info["model"] != name:
        raise web.HTTPNotFound(
            body=orjson.dumps({"error": f"Model {request.match_info['model']} not found"}),
            content_type="application/json",
        )


def _json(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        content_type="application/json",
    )
