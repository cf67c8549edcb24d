"""``explainer demo``: the credit-score model of KServe's TrustyAI example, explained.

The model is rebuilt exactly as that example trains it, served in-process over v2, and
the explainer is started in front of it. ``--once`` sends one request in each accepted
body format, prints the answers and exits.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import orjson
from aiohttp import web
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from explainer.background_data import LoadedBackground
from explainer.demo.predictor import predictor_app
from explainer.server.app import RUNTIME, create_app
from explainer.settings import Settings

MODEL_NAME = "credit-score"
FEATURES = ["Income Level", "Age", "Loan Amount", "Employment Status", "Credit History"]


@dataclass(frozen=True)
class CreditModel:
    model: LogisticRegression
    train: np.ndarray
    test: np.ndarray


def credit_model() -> CreditModel:
    """LogisticRegression on the TrustyAI example's data, 75/25 split, seed 42."""
    x, y = make_classification(
        n_samples=5000,
        n_features=5,
        n_informative=2,
        n_redundant=0,
        class_sep=2.5,
        random_state=42,
    )
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.25, random_state=42)
    return CreditModel(LogisticRegression().fit(x_train, y_train), x_train, x_test)


def applicant(credit: CreditModel) -> list[float]:
    """A test applicant near the decision boundary (0.2 < p < 0.8) whose loan amount is
    far from the usual, so that both informative features matter."""
    p = credit.model.predict_proba(credit.test)[:, 1]
    near = np.flatnonzero((p > 0.2) & (p < 0.8))
    loan = FEATURES.index("Loan Amount")
    deviation = np.abs(credit.test[near, loan] - credit.train[:, loan].mean())
    return [round(float(v), 4) for v in credit.test[near[int(np.argmax(deviation))]]]


def request_bodies(row: list[float]) -> dict[str, dict[str, Any]]:
    return {
        "instances": {"instances": [row]},
        "data.ndarray": {"data": {"ndarray": [row], "names": FEATURES}},
        "inputs": {
            "inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]
        },
    }


async def run(host: str, port: int, explainer_type: str, once: bool) -> int:
    credit = credit_model()
    predictor = web.AppRunner(predictor_app(credit.model, MODEL_NAME, len(FEATURES)))
    await predictor.setup()
    await web.TCPSite(predictor, "127.0.0.1", 0).start()
    predictor_port = _port(predictor)
    settings = Settings(
        model_name=MODEL_NAME,
        predictor_host=f"127.0.0.1:{predictor_port}",
        host=host,
        http_port=port,
        explainer_type=explainer_type,
    )
    app = create_app(
        settings, LoadedBackground(credit.train, FEATURES, "credit-score training data")
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    await app[RUNTIME].warmed.wait()
    url = f"http://{host}:{_port(runner)}/v1/models/{MODEL_NAME}"
    try:
        if once:
            return await _send_each(url, applicant(credit))
        _print_instructions(url, predictor_port, applicant(credit))
        await asyncio.Event().wait()
        return 0
    finally:
        await runner.cleanup()
        await predictor.cleanup()


def _port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


async def _send_each(url: str, row: list[float]) -> int:
    failures = 0
    async with aiohttp.ClientSession() as session:
        calls = [(f"{url}:explain", name, body) for name, body in request_bodies(row).items()]
        calls.append((f"{url}:predict", "instances", {"instances": [row]}))
        for target, name, body in calls:
            async with session.post(
                target, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
            ) as response:
                answer = await response.read()
                print(f"POST {target}  ({name} body) -> {response.status}")
                print(orjson.dumps(orjson.loads(answer), option=orjson.OPT_INDENT_2).decode())
                failures += response.status != 200
    return 1 if failures else 0


def _print_instructions(url: str, predictor_port: int, row: list[float]) -> None:
    explain = orjson.dumps({"instances": [row]}).decode()
    print(f"credit-score model served in-process (v2) on 127.0.0.1:{predictor_port}")
    print(f"explainer ready at {url}\n")
    print("Explain one applicant (LIME and SHAP):")
    print(
        f"  curl -s -H 'Content-Type: application/json' -d {shlex.quote(explain)} {url}:explain\n"
    )
    with_names = orjson.dumps(request_bodies(row)["data.ndarray"]).decode()
    print("The same, with feature names and SHAP only:")
    body = with_names[:-1] + ', "parameters": {"explainer": "SHAP"}}'
    print(f"  curl -s -H 'Content-Type: application/json' -d {shlex.quote(body)} {url}:explain\n")
    print("Predict (pass-through to the model):")
    print(
        f"  curl -s -H 'Content-Type: application/json' -d {shlex.quote(explain)} {url}:predict\n"
    )
    print("Ctrl-C to stop.", flush=True)
