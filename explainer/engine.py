"""The transport-agnostic service layer: rows in, explanations out.

The HTTP handlers (and later the batch runner) call this. For one request it plans
every row's LIME and SHAP perturbations, sends all of them to the predictor together
(split only by the predictor's batch limit), and fits the explanations from the
scores. CPU work runs on the executor so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

import numpy as np

from explainer.background_data import BackgroundSnapshot, BackgroundStore
from explainer.errors import BadRequest, PayloadTooLarge, PredictorFailed
from explainer.payloads import ExplainParameters, RowExplanation, RowsRequest
from explainer.predictor import ModelMetadata
from explainer.settings import Settings
from explainers import kernel_shap, lime
from explainers.saliencies import Saliencies

T = TypeVar("T")
log = logging.getLogger(__name__)


class Predictor(Protocol):
    metadata: ModelMetadata

    @property
    def output_name(self) -> str | None: ...

    async def infer(self, rows: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Explained:
    rows: list[RowExplanation]
    features: list[str]
    outputs: list[str]
    timings: dict[str, float] = field(default_factory=dict)  # seconds, per stage


@dataclass(frozen=True)
class _Job:
    kinds: tuple[str, ...]
    lime_samples: int
    shap_samples: int
    seed: int


class Engine:
    def __init__(
        self,
        settings: Settings,
        predictor: Predictor,
        store: BackgroundStore,
        executor: Executor,
        *,
        features: int | None = None,
        feature_names: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.predictor = predictor
        self.store = store
        self._executor = executor
        self.features = features
        self.feature_names = feature_names

    async def explain(self, request: RowsRequest) -> Explained:
        rows, names = self._checked_rows(request)
        job = self._job(request.parameters, rows.shape[1])
        self.store.observe(rows)
        timings = dict.fromkeys(("plan", "predictor", "fit"), 0.0)
        snapshot = await self._run(self.store.snapshot)
        fitted: list[dict[str, Saliencies]] = []
        scores_width = 0
        # Rows are explained in groups whose perturbations fill the predictor calls in
        # flight, so memory stays bounded however many rows a request has.
        for group in self._groups(rows, job):
            start = time.perf_counter()
            plans = await self._run(partial(self._plan_rows, group, snapshot, job))
            timings["plan"] += time.perf_counter() - start

            start = time.perf_counter()
            batch = np.concatenate([p.rows for per_row in plans for p in per_row.values()])
            scores = await self.predictor.infer(batch)
            timings["predictor"] += time.perf_counter() - start

            start = time.perf_counter()
            fitted.extend(await self._run(partial(_fit_all, plans, scores)))
            timings["fit"] += time.perf_counter() - start
            scores_width = scores.shape[1]
            del plans, batch, scores

        outputs, selected = self._outputs(scores_width, request.parameters.target)
        facts = {kind: {"background": snapshot.description} for kind in job.kinds}
        explained = [
            RowExplanation({k: s.select(selected) for k, s in row.items()}, facts) for row in fitted
        ]
        return Explained(explained, names, outputs, timings)

    def _groups(self, rows: np.ndarray, job: _Job) -> list[np.ndarray]:
        per_row = 0
        if "LIME" in job.kinds:
            per_row += job.lime_samples
        if "SHAP" in job.kinds:  # an upper bound: fewer when every coalition fits the budget
            per_row += (1 + job.shap_samples) * self.settings.shap_background_size + 1
        in_flight = self.settings.predictor_max_batch * self.settings.predictor_max_concurrency
        size = max(1, in_flight // max(per_row, 1))
        return [rows[i : i + size] for i in range(0, rows.shape[0], size)]

    async def predict(self, request: RowsRequest) -> np.ndarray:
        rows, _ = self._checked_rows(request)
        return await self.predictor.infer(rows)

    # ---- steps ---------------------------------------------------------------------------

    def _checked_rows(self, request: RowsRequest) -> tuple[np.ndarray, list[str]]:
        rows = request.rows
        if rows.shape[0] > self.settings.max_rows:
            raise PayloadTooLarge(
                f"{rows.shape[0]} rows in one request; the limit is {self.settings.max_rows} "
                "(MAX_ROWS): split the request"
            )
        if self.features is None:
            self.features = rows.shape[1]  # no background, metadata or names: first request decides
        if rows.shape[1] != self.features:
            raise BadRequest(
                f"rows have {rows.shape[1]} features but the model takes {self.features}"
            )
        known = self.feature_names
        if request.names is None:
            return rows, known or [f"inputs-{i}" for i in range(self.features)]
        if known is None or request.names == known:
            return rows, request.names
        missing = sorted(set(known) - set(request.names))
        unknown = sorted(set(request.names) - set(known))
        if missing or unknown:
            raise BadRequest(
                f"feature names do not match the model's: missing {missing}, unknown {unknown}"
            )
        order = [request.names.index(name) for name in known]
        return np.ascontiguousarray(rows[:, order]), known

    def _job(self, params: ExplainParameters, m: int) -> _Job:
        kind = params.explainer or self.settings.explainer_type
        kinds = ("LIME", "SHAP") if kind == "ALL" else (kind,)
        lime_samples = params.lime_samples or self.settings.lime_samples
        shap_samples = (
            params.shap_samples or self.settings.shap_samples or kernel_shap.default_budget(m)
        )
        limits = (
            ("lime_samples", lime_samples, self.settings.lime_max_samples, "LIME_MAX_SAMPLES"),
            ("shap_samples", shap_samples, self.settings.shap_max_samples, "SHAP_MAX_SAMPLES"),
        )
        for name, asked, cap, env in limits:
            if asked > cap:
                raise PayloadTooLarge(
                    f"parameters.{name}={asked} is over the limit {cap} ({env}); ask for fewer"
                )
        seed = self.settings.seed if params.seed is None else params.seed
        return _Job(kinds, lime_samples, shap_samples, seed)

    def _plan_rows(
        self, rows: np.ndarray, snapshot: BackgroundSnapshot, job: _Job
    ) -> list[dict[str, lime.LimePlan | kernel_shap.ShapPlan]]:
        return [self._plan(row, snapshot, job) for row in rows]

    def _plan(
        self, row: np.ndarray, snapshot: BackgroundSnapshot, job: _Job
    ) -> dict[str, lime.LimePlan | kernel_shap.ShapPlan]:
        plans: dict[str, lime.LimePlan | kernel_shap.ShapPlan] = {}
        if "LIME" in job.kinds:
            context = lime.LimeContext(snapshot.lime, samples=job.lime_samples, seed=job.seed)
            plans["LIME"] = lime.plan(row, context)
        if "SHAP" in job.kinds:
            shap_context = kernel_shap.ShapContext(
                snapshot.shap, samples=job.shap_samples, seed=job.seed
            )
            plans["SHAP"] = kernel_shap.plan(row, shap_context)
        return plans

    def output_names(self, k: int) -> list[str]:
        """A one-column output the predictor's metadata declares is named after it; else
        OUTPUT_NAMES; else ``outputs-<k>``."""
        label = self.predictor.metadata.output_label(self.predictor.output_name)
        if label is not None and k == 1:
            return [label]
        names = self.settings.output_names or [f"outputs-{i}" for i in range(k)]
        if len(names) != k:
            raise PredictorFailed(
                f"predictor returned {k} output column(s) but OUTPUT_NAMES lists {len(names)}"
            )
        return names

    def adopt(self, metadata: ModelMetadata) -> None:
        """Take the feature count, and names where declared, from the predictor's metadata:
        they win over configuration, which is logged when it disagrees."""
        if metadata.feature_names:
            names = list(metadata.feature_names)
            if self.feature_names and self.feature_names != names:
                log.warning(
                    "the predictor declares features %s; using them instead of %s",
                    names,
                    self.feature_names,
                )
            self.feature_names, self.features = names, len(names)
        elif metadata.features is not None:
            if self.features is None:
                self.features = metadata.features
            elif self.features != metadata.features:
                log.error(
                    "the predictor's metadata says %d features, the background/feature names %d",
                    metadata.features,
                    self.features,
                )

    def _outputs(self, k: int, target: list[int | str] | None) -> tuple[list[str], np.ndarray]:
        names = self.output_names(k)
        if target is None:
            return names, np.arange(k)
        chosen = []
        for t in target:
            if isinstance(t, int) and 0 <= t < k:
                chosen.append(t)
            elif isinstance(t, str) and t in names:
                chosen.append(names.index(t))
            else:
                raise BadRequest(
                    f"parameters.target {t!r} is not an output; outputs are {names} (or 0..{k - 1})"
                )
        return [names[i] for i in chosen], np.array(chosen)

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)


def _fit_all(
    plans: list[dict[str, lime.LimePlan | kernel_shap.ShapPlan]], scores: np.ndarray
) -> list[dict[str, Saliencies]]:
    fitted: list[dict[str, Saliencies]] = []
    offset = 0
    for per_row in plans:
        row: dict[str, Saliencies] = {}
        for kind, plan in per_row.items():
            part = scores[offset : offset + plan.rows.shape[0]]
            offset += plan.rows.shape[0]
            if isinstance(plan, lime.LimePlan):
                row[kind] = lime.fit(plan, part)
            else:
                row[kind] = kernel_shap.fit(plan, part)
        fitted.append(row)
    return fitted


def describe(settings: Settings) -> dict[str, Any]:
    """Non-secret settings worth logging at start-up."""
    return {
        "explainer_type": settings.explainer_type,
        "model_name": settings.model_name,
        "predictor": settings.predictor_url() if settings.predictor_host else None,
        "background": settings.background_data or "reservoir of inputs seen",
        "response_format": settings.response_format,
    }
