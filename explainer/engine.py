"""The transport-agnostic service layer: rows in, explanations out.

The HTTP handlers (and later the batch runner) call this. For one request it plans
every row's LIME and SHAP perturbations (no more rows at once, across requests, than
twice the predictor's calls in flight: ``admission``), sends them to the predictor as
one stream of calls cut only by its batch limit, and fits the explanations from the
scores, preparing what it can while the predictor scores. CPU work runs on the
executor so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol, TypeVar

import numpy as np

from explainer.admission import RowBudget
from explainer.background_data import BackgroundSnapshot, BackgroundStore
from explainer.errors import BadRequest, PayloadTooLarge, PredictorFailed
from explainer.payloads import ExplainParameters, RowExplanation, RowsRequest
from explainer.predictor import ModelMetadata, Scoring
from explainer.settings import Settings
from explainers import kernel_shap, lime
from explainers.regression import RidgeDesign
from explainers.saliencies import Saliencies

T = TypeVar("T")
log = logging.getLogger(__name__)


class Predictor(Protocol):
    metadata: ModelMetadata

    @property
    def output_name(self) -> str | None: ...

    async def infer(self, rows: np.ndarray) -> np.ndarray: ...

    def stream(self) -> Scoring: ...


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
    tolerance: float | None = None


MAX_ROUNDS = 8
# With a tolerance, the first round is this share of the default budget: a loose
# tolerance then costs fewer predictor rows than the default, a tight one more.
PILOT_SHARE = 0.25
# Units to add are estimated from variance ∝ 1/units, with this margin.
GROWTH_MARGIN = 1.1


class _Run:
    """One explanation in progress: its plan, the scores so far, its fitted saliencies."""

    def __init__(self, plan: lime.LimePlan | kernel_shap.ShapPlan) -> None:
        self.plan = plan
        self.pending = plan.rows
        self.scores = np.zeros((0, 0))
        self.saliencies: Saliencies | None = None
        self.prepared: RidgeDesign | None = None  # LIME's score-free half of the fit

    @property
    def unprepared(self) -> bool:
        """Whether its fit has a score-free half (LIME's) not yet built."""
        return isinstance(self.plan, lime.LimePlan) and self.prepared is None

    def prepare(self) -> None:
        if isinstance(self.plan, lime.LimePlan) and self.prepared is None:
            self.prepared = lime.prepare(self.plan)

    def receive(self, scores: np.ndarray) -> None:
        self.scores = scores if self.scores.size == 0 else np.concatenate([self.scores, scores])
        self.pending = self.pending[:0]

    def fit(self) -> None:
        if isinstance(self.plan, lime.LimePlan):
            self.saliencies = lime.fit(self.plan, self.scores, self.prepared)
        else:
            self.saliencies = kernel_shap.fit(self.plan, self.scores)

    def extend(self, tolerance: float, settings: Settings) -> bool:
        assert self.saliencies is not None
        widest = float(self.saliencies.confidence.max())
        if widest <= tolerance:
            return False
        growth = GROWTH_MARGIN * (widest / tolerance) ** 2
        if isinstance(self.plan, lime.LimePlan):
            size = int((self.plan.units == 0).sum())
            room = (settings.lime_max_samples - self.plan.rows.shape[0]) // max(size, 1)
            add = min(int(np.ceil(self.plan.n_units * (growth - 1))), room)
            if add <= 0:
                return False
            self.plan, self.pending = lime.extend(self.plan, add)
            self.prepared = None
        else:
            design = self.plan.design
            room = (settings.shap_max_samples - len(design.masks)) // 2
            add = min(int(np.ceil(design.n_units * (growth - 1))), room)
            if design.exact or add <= 0:
                return False
            self.plan, self.pending = kernel_shap.extend(self.plan, add)
        return True

    def result(self, job: _Job) -> Saliencies:
        assert self.saliencies is not None
        if job.tolerance is None:
            return self.saliencies
        met = bool(self.saliencies.confidence.max() <= job.tolerance)
        return replace(self.saliencies, facts={**self.saliencies.facts, "tolerance_met": met})


def _fit_runs(runs: list[_Run]) -> None:
    for run in runs:
        run.fit()


def _pending(runs: list[_Run]) -> np.ndarray:
    """The runs' rows still to score; one run's as they are (a copy of a SHAP plan is
    17 MB per explanation)."""
    pending = [run.pending for run in runs]
    return pending[0] if len(pending) == 1 else np.concatenate(pending)


def _prepare_runs(runs: list[_Run]) -> None:
    for run in runs:
        run.prepare()


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
        # Rows planned at once, across requests: twice the predictor's calls in flight.
        self.budget = RowBudget(
            2 * settings.predictor_max_batch * settings.predictor_max_concurrency
        )

    async def explain(self, request: RowsRequest) -> Explained:
        rows, names = self._checked_rows(request)
        job = self._job(request.parameters, rows.shape[1])
        self.store.observe(rows)
        timings = dict.fromkeys(("plan", "predictor", "fit"), 0.0)
        snapshot = await self._run(self.store.snapshot)
        fitted: list[dict[str, Saliencies]] = []
        width = 0
        # Rows are explained in groups whose perturbations fill the predictor calls in
        # flight, so memory stays bounded however many rows a request has; across
        # requests, a group is planned only once its rows fit the budget (twice the calls
        # in flight), so memory follows the predictor's calls, not the queue. Within a group
        # all the kinds' rows go to the predictor as one stream of calls: SHAP's many rows
        # first, their calls sent as soon as they are planned, then LIME's few, which
        # share SHAP's last call instead of paying a call of their own. LIME plans while
        # SHAP's first calls are scored and prepares its fit while its own are. Each
        # kind fits as soon as its rows are scored, and grows towards a tolerance alone.
        order = sorted(job.kinds, key=lambda kind: kind != "SHAP")
        per_row = self._rows_per_row(job, rows.shape[1], snapshot)
        for group in self._groups(rows, per_row):
            async with self.budget.hold(per_row * group.shape[0]):
                fitted += await self._explain_group(group, order, snapshot, job, timings)
            width = fitted[-1][job.kinds[0]].scores.shape[0]  # (K, M): K outputs

        outputs, selected = self._outputs(width, request.parameters.target)
        facts = {kind: {"background": snapshot.description} for kind in job.kinds}
        explained = [
            RowExplanation({k: s.select(selected) for k, s in row.items()}, facts) for row in fitted
        ]
        return Explained(explained, names, outputs, timings)

    async def _explain_group(
        self,
        group: np.ndarray,
        order: list[str],
        snapshot: BackgroundSnapshot,
        job: _Job,
        timings: dict[str, float],
    ) -> list[dict[str, Saliencies]]:
        """Every kind's explanations of ``group``'s rows: planned, scored as one stream of
        calls, fitted (and grown towards the tolerance)."""
        scoring = self.predictor.stream()
        try:
            runs_by_kind: dict[str, list[_Run]] = {}
            for kind in order:
                start = time.perf_counter()
                plans = await self._run(partial(self._plan_rows, kind, group, snapshot, job))
                timings["plan"] += time.perf_counter() - start
                runs_by_kind[kind] = [_Run(plan) for plan in plans]
                scoring.add(_pending(runs_by_kind[kind]))
            scoring.finish()
            await asyncio.gather(
                *(
                    self._explain_kind(runs_by_kind[kind], scoring.of(a), job, timings)
                    for a, kind in enumerate(order)
                )
            )
        finally:
            scoring.cancel()  # calls nobody waits for any more, after a failure
        return [
            {kind: runs_by_kind[kind][r].result(job) for kind in job.kinds}
            for r in range(group.shape[0])
        ]

    async def _score(
        self,
        runs: list[_Run],
        timings: dict[str, float],
        scoring: Awaitable[np.ndarray] | None = None,
    ) -> None:
        """Score every run's pending rows in one batch (``scoring``, if their calls are
        already on their way), then refit them. What the fits can compute without scores
        is computed while the predictor scores."""
        start = time.perf_counter()
        call = asyncio.ensure_future(scoring or self.predictor.infer(_pending(runs)))
        try:
            unprepared = [run for run in runs if run.unprepared]
            if unprepared:  # SHAP's fit has nothing to prepare: no executor round trip
                await self._run(partial(_prepare_runs, unprepared))
            scores = await call
        except BaseException:
            call.cancel()
            raise
        timings["predictor"] += time.perf_counter() - start
        start = time.perf_counter()
        offset = 0
        for run in runs:
            count = run.pending.shape[0]
            run.receive(scores[offset : offset + count])
            offset += count
        await self._run(partial(_fit_runs, runs))
        timings["fit"] += time.perf_counter() - start

    async def _explain_kind(
        self,
        runs: list[_Run],
        scoring: Awaitable[np.ndarray],
        job: _Job,
        timings: dict[str, float],
    ) -> None:
        """One kind's planned explanations of a group: scored (``scoring``), fitted, then
        grown towards the tolerance."""
        await self._score(runs, timings, scoring)
        for _ in range(MAX_ROUNDS if job.tolerance is not None else 0):
            growing = await self._run(partial(self._grow, runs, job))
            if not growing:
                break
            await self._score(growing, timings)

    def _grow(self, runs: list[_Run], job: _Job) -> list[_Run]:
        """Extend the runs whose widest interval is over the tolerance, within the caps."""
        assert job.tolerance is not None
        return [run for run in runs if run.extend(job.tolerance, self.settings)]

    def _rows_per_row(self, job: _Job, m: int, snapshot: BackgroundSnapshot) -> int:
        """Predictor rows one row's explanations plan in their first round."""
        per_row = 0
        if "LIME" in job.kinds:
            per_row += job.lime_samples
        if "SHAP" in job.kinds:
            background = snapshot.shap.rows.shape[0]
            per_row += kernel_shap.rows_planned(m, job.shap_samples, background)
        return max(per_row, 1)

    def _groups(self, rows: np.ndarray, per_row: int) -> list[np.ndarray]:
        in_flight = self.settings.predictor_max_batch * self.settings.predictor_max_concurrency
        size = max(1, in_flight // per_row)
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
        if rows.shape[1] > self.settings.max_features:
            raise PayloadTooLarge(
                f"rows have {rows.shape[1]} features; the limit is {self.settings.max_features} "
                "(MAX_FEATURES)"
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
        asked = (
            (
                "lime_samples",
                params.lime_samples,
                self.settings.lime_max_samples,
                "LIME_MAX_SAMPLES",
            ),
            (
                "shap_samples",
                params.shap_samples,
                self.settings.shap_max_samples,
                "SHAP_MAX_SAMPLES",
            ),
        )
        for name, value, cap, env in asked:
            if value is not None and value > cap:
                raise PayloadTooLarge(
                    f"parameters.{name}={value} is over the limit {cap} ({env}); ask for fewer"
                )
        # Defaults (configured or shap's "auto") are clipped to the caps, never refused.
        lime_samples = params.lime_samples or min(
            self.settings.lime_samples, self.settings.lime_max_samples
        )
        shap_samples = params.shap_samples or min(
            self.settings.shap_samples or kernel_shap.default_budget(m),
            self.settings.shap_max_samples,
        )
        seed = self.settings.seed if params.seed is None else params.seed
        if params.tolerance is not None:
            # Sample in rounds from a pilot; the caps bound the total.
            lime_samples = max(1 + 64 * lime.REPLICATES, int(lime_samples * PILOT_SHARE))
            shap_samples = max(2 * m + 8, int(shap_samples * PILOT_SHARE))
        return _Job(kinds, lime_samples, shap_samples, seed, params.tolerance)

    def _plan_rows(
        self, kind: str, rows: np.ndarray, snapshot: BackgroundSnapshot, job: _Job
    ) -> list[lime.LimePlan | kernel_shap.ShapPlan]:
        return [self._plan(kind, row, snapshot, job) for row in rows]

    def _plan(
        self, kind: str, row: np.ndarray, snapshot: BackgroundSnapshot, job: _Job
    ) -> lime.LimePlan | kernel_shap.ShapPlan:
        if kind == "LIME":
            context = lime.LimeContext(snapshot.lime, samples=job.lime_samples, seed=job.seed)
            return lime.plan(row, context)
        shap_context = kernel_shap.ShapContext(
            snapshot.shap, samples=job.shap_samples, seed=job.seed
        )
        return kernel_shap.plan(row, shap_context)

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


def describe(settings: Settings) -> dict[str, Any]:
    """Non-secret settings worth logging at start-up."""
    return {
        "explainer_type": settings.explainer_type,
        "model_name": settings.model_name,
        "predictor": settings.predictor_url() if settings.predictor_host else None,
        "background": settings.background_data or "reservoir of inputs seen",
        "response_format": settings.response_format,
    }
