"""The transport-agnostic service layer: rows in, explanations out.

The HTTP handlers and the batch runner call this. For one request it plans every
row's explanations — one per configured explainer (``explainers.interface.Explainer``),
each through the row's masker — (no more rows at once, across requests, than twice the
predictor's calls in flight: ``admission``), sends them to the predictor as one stream
of calls cut only by its batch limit, and fits the explanations from the scores,
preparing what it can while the predictor scores. CPU work runs on the executor so the
event loop keeps serving. The engine knows explainers only through their interface.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar, cast

import numpy as np

from explainer.admission import RowBudget
from explainer.background_data import BackgroundSnapshot, BackgroundStore
from explainer.errors import BadRequest, ClientError, PayloadTooLarge, PredictorFailed
from explainer.features import Schema, adopt, from_background
from explainer.payloads import (
    EXAMPLE,
    ExplainParameters,
    PromptRequest,
    RowExplanation,
    RowsRequest,
)
from explainer.predictor import ModelMetadata, PredictorClient
from explainer.predictor.transport import RESPONSE_OUTPUT, Generative, is_text
from explainer.settings import Settings
from explainers.interface import Explainer, Masker, Plan
from explainers.maskers.numeric import NumericRows
from explainers.maskers.prompt import MESSAGES, Chat, Prompt
from explainers.maskers.text import WORDS, Text
from explainers.saliencies import Saliencies

T = TypeVar("T")
log = logging.getLogger(__name__)
MAX_ROUNDS = 8  # tolerance rounds after the first


@dataclass(frozen=True)
class Explained:
    rows: list[RowExplanation]
    features: list[str]
    outputs: list[str]
    timings: dict[str, float] = field(default_factory=dict)  # seconds, per stage


@dataclass(frozen=True)
class Budget:
    """One explainer with its sample budget: the configured default (None: the
    explainer's own), the cap a request may not pass, and their names for messages."""

    explainer: Explainer[Any]
    samples: int | None
    cap: int
    parameter: str  # the request parameter: "lime_samples"
    cap_setting: str  # the setting that caps it: "LIME_MAX_SAMPLES"

    @property
    def name(self) -> str:
        return self.explainer.name


@dataclass(frozen=True)
class _Job:
    budgets: tuple[tuple[Budget, int], ...]  # (explainer, samples), in response order
    seed: int
    tolerance: float | None = None
    # Explainers sampling at their default that settle: the most samples they may reach.
    settling: dict[str, int] = field(default_factory=dict)

    def grows(self, name: str) -> bool:
        return self.tolerance is not None or name in self.settling

    def cap(self, budget: Budget) -> int:
        return self.settling.get(budget.name, budget.cap)


class _Run:
    """One explanation in progress: its plan, the scores so far, its fitted saliencies."""

    def __init__(self, budget: Budget, plan: Plan, cap: int) -> None:
        self.explainer = budget.explainer
        self.cap = cap
        self.plan = plan
        self.pending = plan.rows
        self.scores = np.zeros((0, 0))
        self.saliencies: Saliencies | None = None
        self.prepared: Any = None  # the score-free half of the fit, once built

    @property
    def unprepared(self) -> bool:
        return self.explainer.prepares and self.prepared is None

    def prepare(self) -> None:
        if self.unprepared:
            self.prepared = self.explainer.prepare(self.plan)

    def receive(self, scores: np.ndarray) -> None:
        self.scores = scores if self.scores.size == 0 else np.concatenate([self.scores, scores])
        self.pending = self.pending[:0]

    def fit(self) -> None:
        self.saliencies = self.explainer.fit(self.plan, self.scores, self.prepared)

    def extend(self, tolerance: float | None) -> bool:
        assert self.saliencies is not None
        grown = self.explainer.extend(self.plan, self.saliencies, tolerance, self.cap)
        if grown is None:
            return False
        self.plan, self.pending = grown
        self.prepared = None
        return True

    def result(self, job: _Job) -> Saliencies:
        assert self.saliencies is not None
        if job.tolerance is None:
            return self.saliencies
        met = bool(self.saliencies.confidence.max() <= job.tolerance)
        return replace(self.saliencies, facts={**self.saliencies.facts, "tolerance_met": met})


def _rides(planned: list[int], i: int) -> bool:
    """Whether explainer ``i``'s whole default budget rides in another's larger plan:
    then it samples it at once instead of settling in rounds. Its rows share that
    plan's calls, where each further round would wait a round trip (and a fit) behind
    them — on a predictor scoring one call at a time, longer than scoring the rows
    settling might have saved (``ALL``: LIME's 5000 rows beside SHAP's 12,000)."""
    return any(rows >= planned[i] for j, rows in enumerate(planned) if j != i)


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


def numeric_rows(row: np.ndarray, snapshot: BackgroundSnapshot) -> Masker:
    """The masker of a numeric row: SHAP's background and LIME's statistics."""
    return NumericRows(row, snapshot.shap, snapshot.lime)


class Engine:
    def __init__(
        self,
        settings: Settings,
        predictor: PredictorClient,
        store: BackgroundStore,
        executor: Executor,
        budgets: tuple[Budget, ...],
        *,
        masker: Callable[[np.ndarray, BackgroundSnapshot], Masker] = numeric_rows,
        features: int | None = None,
        feature_names: list[str] | None = None,
        schema: Schema | None = None,
    ) -> None:
        self.settings = settings
        self.predictor = predictor
        self.store = store
        self._executor = executor
        self.budgets = budgets  # in response order (LIME before SHAP)
        self._masker = masker
        self.features = features
        # The predictor's metadata declares one BYTES input tensor (not one per feature):
        # the model takes texts, and rows are refused; rows of known features refuse texts.
        self.takes_texts = False
        self.feature_names = feature_names
        # The features' kinds and categories: from the background and the settings, then
        # the predictor's metadata; without either, from the settings at the first request.
        self.schema = schema
        if schema is not None:
            if schema.mixed:
                log.info("features: %s", schema.kinds)
            predictor.use_schema(schema)
        # Rows planned at once, across requests: twice the predictor's calls in flight.
        self.budget = RowBudget(
            2 * settings.predictor_max_batch * settings.predictor_max_concurrency
        )

    async def explain(self, request: RowsRequest | PromptRequest) -> Explained:
        if isinstance(request, PromptRequest):
            return await self._explain_prompt(request)
        if self._texts(request):
            return await self._explain_texts(request)
        rows, names = self._checked_rows(request)
        self._check_budgets(request.parameters)
        self.store.observe(rows)
        timings = dict.fromkeys(("plan", "predictor", "fit"), 0.0)
        snapshot = await self._run(self.store.snapshot)

        def make(row: np.ndarray) -> Masker:
            return self._masker(row, snapshot)

        masker = make(rows[0])
        job = self._job(request.parameters, masker)
        fitted: list[dict[str, Saliencies]] = []
        # Rows are explained in groups whose perturbations fill the predictor calls in
        # flight, so memory stays bounded however many rows a request has; across
        # requests, a group is planned only once its rows fit the budget (twice the calls
        # in flight), so memory follows the predictor's calls, not the queue. Within a group
        # every explainer's rows go to the predictor as one stream of calls, the largest
        # plan first (SHAP's), its calls sent as soon as it is planned, then the smaller
        # ones (LIME's), which share its last call instead of paying a call of their own.
        # LIME plans while SHAP's first calls are scored and prepares its fit while its
        # own are. Each explainer fits as soon as its rows are scored, and grows towards
        # a tolerance alone.
        order, per_row = self._order(job, masker)
        for group in self._groups(rows, per_row):
            async with self.budget.hold(per_row * group.shape[0]):
                fitted += await self._explain_group(group, order, make, job, timings)

        described: dict[str, Any] = {"background": snapshot.description}
        if self.schema is not None and self.schema.mixed:
            described["feature_kinds"] = self.schema.kinds
        return self._explained(fitted, job, described, request, names, timings)

    async def _explain_texts(self, request: RowsRequest) -> Explained:
        """Texts: each its own masker and budget (its segments are its own), explained
        concurrently so that their rows share predictor calls."""
        maskers = self._text_maskers(request)
        self._check_budgets(request.parameters)
        timings = dict.fromkeys(("plan", "predictor", "fit"), 0.0)
        segments = request.parameters.segments or WORDS
        results = await asyncio.gather(
            *(self._explain_one(m, request.parameters, timings) for m in maskers)
        )
        job = results[0][1]
        explained = self._explained(
            [r for r, _ in results], job, {"segments": segments}, request, [], timings
        )
        rows = [
            replace(row, segments=tuple(m.segmented.items()))
            for row, m in zip(explained.rows, maskers, strict=True)
        ]
        return replace(explained, rows=rows)

    async def _explain_prompt(self, request: PromptRequest) -> Explained:
        """A generative model's prompt or chat: the value is log p(response | prompt), one
        output named ``response``; the segments are the prompt's (or the messages')
        words or sentences, or whole messages. The response is generated first when the
        request has none."""
        if not self.predictor.transport.generative:
            raise BadRequest(
                f"'{request.field}' is for a generative model (PREDICTOR_PROTOCOL=openai); "
                f"this predictor takes rows or texts, e.g. {EXAMPLE}"
            )
        transport = cast(Generative, self.predictor.transport)
        params = request.parameters
        if request.max_tokens > self.settings.max_response_tokens:
            raise PayloadTooLarge(
                f"'max_tokens' {request.max_tokens} is over the limit "
                f"{self.settings.max_response_tokens} (MAX_RESPONSE_TOKENS)"
            )
        self._check_budgets(params)
        segments = params.segments or WORDS
        masker: Prompt | Chat
        prompt: str | tuple[tuple[str, str], ...]
        if request.messages is not None:
            prompt = tuple(request.messages)
            for i, (_, content) in enumerate(request.messages):
                self._check_text_size(content, f"'messages[{i}].content'")
        else:
            assert request.prompt is not None
            prompt = request.prompt
            text = self._text_masker(request.prompt, segments, "'prompt'")
        response = request.response
        if response is None:
            response = await transport.generate(prompt, request.max_tokens)
            if not response:
                raise BadRequest("the model's response is empty: send a 'response' to explain")
        await transport.check_length(prompt, response)
        if request.messages is not None:
            masker = Chat(request.messages, response, segments)
            if masker.segments == 0:
                raise BadRequest(f"'messages' have no {segments} to explain")
            if masker.segments > self.settings.max_features:
                raise PayloadTooLarge(
                    f"'messages' have {masker.segments} {segments}; the limit is "
                    f"{self.settings.max_features} (MAX_FEATURES): explain whole messages"
                )
            items = masker.items()
        else:
            masker, items = Prompt(text, response), text.segmented.items()
        timings = dict.fromkeys(("plan", "predictor", "fit"), 0.0)
        fitted, job = await self._explain_one(masker, params, timings)
        facts = {b.name: {"segments": segments, "response": response} for b, _ in job.budgets}
        row = RowExplanation(fitted, facts, tuple(items))
        return Explained([row], [], [RESPONSE_OUTPUT], timings)

    async def _explain_one(
        self, masker: Masker, params: ExplainParameters, timings: dict[str, float]
    ) -> tuple[dict[str, Saliencies], _Job]:
        """One input whose masker holds all of it (a text, a prompt), on its own budget."""
        job = self._job(params, masker)
        order, per_row = self._order(job, masker)
        async with self.budget.hold(per_row):
            one = np.empty(1, dtype=object)  # the masker ignores the row
            done = await self._explain_group(one, order, lambda _: masker, job, timings)
        return done[0], job

    def _order(self, job: _Job, masker: Masker) -> tuple[list[tuple[Budget, int]], int]:
        """The job's explainers, the largest plan first, and the rows they plan per row."""
        sizes = {b.name: b.explainer.rows_planned(masker, n) for b, n in job.budgets}
        order = sorted(job.budgets, key=lambda item: -sizes[item[0].name])
        return order, max(sum(sizes.values()), 1)

    def _explained(
        self,
        fitted: list[dict[str, Saliencies]],
        job: _Job,
        described: dict[str, Any],
        request: RowsRequest,
        names: list[str],
        timings: dict[str, float],
    ) -> Explained:
        width = fitted[-1][job.budgets[0][0].name].scores.shape[0]  # (K, M): K outputs
        outputs, selected = self._outputs(width, request.parameters.target)
        facts = {b.name: described for b, _ in job.budgets}
        explained = [
            RowExplanation({k: s.select(selected) for k, s in row.items()}, facts) for row in fitted
        ]
        return Explained(explained, names, outputs, timings)

    def _texts(self, request: RowsRequest) -> bool:
        """Whether the request holds texts; a 400 where the model takes the other kind."""
        texts = is_text(request.rows)
        where = request.field or "the input"
        if self.predictor.transport.generative:
            raise BadRequest(
                f"'{where}': the predictor is a generative model (PREDICTOR_PROTOCOL=openai); "
                'send {"prompt": "...", "response": "..."}'
            )
        if texts and not self.takes_texts and self.features is not None:
            raise BadRequest(
                f"'{where}' holds texts, but the model takes rows of {self.features} "
                f"features: send rows, e.g. {EXAMPLE}"
            )
        if not texts and self.takes_texts:
            raise BadRequest(
                f"'{where}' holds rows, but the model takes texts (one BYTES input): send "
                '{"instances": ["a text", "another"]}'
            )
        return texts

    def _text_maskers(self, request: RowsRequest) -> list[Text]:
        """A masker per text of the request, or the 4xx that its size calls for."""
        texts = request.rows
        if texts.shape[0] > self.settings.max_rows:
            raise PayloadTooLarge(
                f"{texts.shape[0]} texts in one request; the limit is {self.settings.max_rows} "
                "(MAX_ROWS): split the request"
            )
        segments = request.parameters.segments or WORDS
        maskers = []
        for i, text in enumerate(texts.tolist()):
            where = f"'{request.field}[{i}]'" if request.field else "the text"
            maskers.append(self._text_masker(text, segments, where))
        return maskers

    def _check_text_size(self, text: str, where: str) -> None:
        limit = self.settings.max_text_chars
        if len(text) > limit:
            raise PayloadTooLarge(
                f"{where} has {len(text)} characters; the limit is {limit} "
                "(MAX_TEXT_CHARS): explain a shorter text"
            )

    def _text_masker(self, text: str, segments: str, where: str) -> Text:
        self._check_text_size(text, where)
        if segments == MESSAGES:
            raise BadRequest(
                f'"parameters.segments": "messages" is for chat \'messages\'; {where} has '
                '"words" or "sentences"'
            )
        masker = Text(text, segments)
        if masker.segments == 0:
            raise BadRequest(f"{where} has no {segments} to explain; send a text")
        if masker.segments > self.settings.max_features:
            raise PayloadTooLarge(
                f"{where} has {masker.segments} {segments}; the limit is "
                f"{self.settings.max_features} (MAX_FEATURES): explain its sentences "
                '("parameters": {"segments": "sentences"}) or a shorter text'
            )
        return masker

    async def _explain_group(
        self,
        group: np.ndarray,
        order: list[tuple[Budget, int]],
        make: Callable[[np.ndarray], Masker],
        job: _Job,
        timings: dict[str, float],
    ) -> list[dict[str, Saliencies]]:
        """Every explainer's explanations of ``group``'s rows: planned, scored as one
        stream of calls, fitted (and grown towards the tolerance)."""
        scoring = self.predictor.stream()
        try:
            runs: dict[str, list[_Run]] = {}
            for budget, samples in order:
                start = time.perf_counter()
                plans = await self._run(
                    partial(self._plan_rows, budget, samples, group, make, job.seed)
                )
                timings["plan"] += time.perf_counter() - start
                runs[budget.name] = [_Run(budget, plan, job.cap(budget)) for plan in plans]
                scoring.add(_pending(runs[budget.name]))
            scoring.finish()
            await asyncio.gather(
                *(
                    self._explain_runs(runs[budget.name], scoring.of(a), job, timings)
                    for a, (budget, _) in enumerate(order)
                )
            )
        finally:
            scoring.cancel()  # calls nobody waits for any more, after a failure
        return [
            {b.name: runs[b.name][r].result(job) for b, _ in job.budgets}
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

    async def _explain_runs(
        self,
        runs: list[_Run],
        scoring: Awaitable[np.ndarray],
        job: _Job,
        timings: dict[str, float],
    ) -> None:
        """One explainer's planned explanations of a group: scored (``scoring``),
        fitted, then grown towards the tolerance."""
        await self._score(runs, timings, scoring)
        for _ in range(MAX_ROUNDS if runs and job.grows(runs[0].explainer.name) else 0):
            growing = await self._run(partial(self._grow, runs, job))
            if not growing:
                break
            await self._score(growing, timings)

    def _grow(self, runs: list[_Run], job: _Job) -> list[_Run]:
        """Extend the runs whose widest interval is over the tolerance (or that are not
        settled), within the caps."""
        return [run for run in runs if run.extend(job.tolerance)]

    def _groups(self, rows: np.ndarray, per_row: int) -> list[np.ndarray]:
        in_flight = self.settings.predictor_max_batch * self.settings.predictor_max_concurrency
        size = max(1, in_flight // per_row)
        return [rows[i : i + size] for i in range(0, rows.shape[0], size)]

    def problem(self, request: RowsRequest) -> str | None:
        """Why ``request``'s rows cannot be explained (a batch row's error), or None."""
        try:
            if self._texts(request):
                self._text_maskers(request)
            else:
                self._checked_rows(request)
        except ClientError as exc:
            return exc.message
        return None

    async def predict(self, request: RowsRequest) -> np.ndarray:
        if self._texts(request):
            self._text_maskers(request)
            return await self.predictor.infer(request.rows)
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
        rows, names = self._ordered(rows, request.names)
        if request.encoded:
            return rows, names
        return self._schema(names).encode(rows, request.field), names

    def _ordered(self, rows: np.ndarray, names: list[str] | None) -> tuple[np.ndarray, list[str]]:
        """The rows' columns in the model's order, by their names where they have them."""
        assert self.features is not None
        known = self.feature_names
        if names is None:
            return rows, known or [f"inputs-{i}" for i in range(self.features)]
        if known is None or names == known:
            return rows, names
        missing = sorted(set(known) - set(names))
        unknown = sorted(set(names) - set(known))
        if missing or unknown:
            raise BadRequest(
                f"feature names do not match the model's: missing {missing}, unknown {unknown}"
            )
        order = [names.index(name) for name in known]
        return np.ascontiguousarray(rows[:, order]), known

    def _schema(self, names: list[str]) -> Schema:
        """The features' schema; without background data or metadata, the settings' at the
        first request (a reservoir of inputs then holds the explainer's own rows)."""
        if self.schema is None:
            try:
                self.schema, _ = from_background(
                    names, None, self.settings.categorical_features, self.settings.integer_features
                )
            except ValueError as exc:
                raise BadRequest(f"{exc} (the features are those of the first request)") from None
            if self.schema.mixed:
                self._use(self.schema, None)
        return self.schema

    def _use(self, schema: Schema, rows: np.ndarray | None) -> None:
        """Tell the background (with its rows re-encoded, where given) and the predictor
        client the features' kinds."""
        log.info("features: %s", schema.kinds)
        self.store.set_kinds(schema.categorical, schema.integer, rows)
        self.predictor.use_schema(schema)

    def _chosen(self, params: ExplainParameters) -> list[Budget]:
        kind = params.explainer or self.settings.explainer_type
        return [b for b in self.budgets if kind in ("ALL", b.name)]

    def _check_budgets(self, params: ExplainParameters) -> None:
        for budget in self._chosen(params):
            asked = getattr(params, budget.parameter)
            if asked is not None and asked > budget.cap:
                raise PayloadTooLarge(
                    f"parameters.{budget.parameter}={asked} is over the limit {budget.cap} "
                    f"({budget.cap_setting}); ask for fewer"
                )

    def _job(self, params: ExplainParameters, masker: Masker) -> _Job:
        seed = self.settings.seed if params.seed is None else params.seed
        m = masker.segments
        chosen = self._chosen(params)
        asked = [getattr(params, b.parameter) for b in chosen]
        # Defaults (configured or the explainer's own) are clipped to the caps, never
        # refused.
        full = [
            n or min(b.samples or b.explainer.default_samples(masker), b.cap)
            for b, n in zip(chosen, asked, strict=True)
        ]
        planned = [b.explainer.rows_planned(masker, n) for b, n in zip(chosen, full, strict=True)]
        budgets, settling = [], {}
        for i, (budget, samples) in enumerate(zip(chosen, full, strict=True)):
            if params.tolerance is not None:
                # Sample in rounds from a pilot; the caps bound the total.
                samples = budget.explainer.pilot_samples(samples, m)
            elif asked[i] is None and budget.samples is None and not _rides(planned, i):
                # At its own default an explainer may stop before its default budget.
                first = budget.explainer.settling_samples(samples, m)
                if first < samples:
                    settling[budget.name] = samples
                    samples = first
            budgets.append((budget, samples))
        return _Job(tuple(budgets), seed, params.tolerance, settling)

    def _plan_rows(
        self,
        budget: Budget,
        samples: int,
        rows: np.ndarray,
        make: Callable[[np.ndarray], Masker],
        seed: int,
    ) -> list[Plan]:
        explainer = budget.explainer
        return [explainer.plan(make(row), samples, seed) for row in rows]

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
        self.takes_texts = metadata.input_datatype == "BYTES" and not metadata.feature_names
        if metadata.feature_names:
            names = list(metadata.feature_names)
            if self.feature_names and self.feature_names != names:
                log.warning(
                    "the predictor declares features %s; using them instead of %s",
                    names,
                    self.feature_names,
                )
            self.feature_names, self.features = names, len(names)
            if self.schema is not None and len(self.schema.features) == len(names):
                for feature, name in zip(self.schema.features, names, strict=True):
                    feature.name = name
            schema = self._schema(names)
            rows = self.store.fixed_rows()
            if adopt(schema, list(metadata.feature_types), rows):
                self._use(schema, rows)
            self.predictor.use_schema(schema)
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
