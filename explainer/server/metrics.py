"""Prometheus metrics, in a registry owned by each app (no module-level state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "explainer_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.explains = Counter(
            "explainer_explain_requests",
            ":explain requests by explainer type and status",
            ["explainer", "status"],
            registry=self.registry,
        )
        self.explain_seconds = Histogram(
            "explainer_explain_seconds",
            "Time to answer an :explain request",
            ["explainer"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.stage_seconds = Histogram(
            "explainer_stage_seconds",
            "Time per explanation stage (plan, predictor, fit)",
            ["stage"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.predictor_rows = Counter(
            "explainer_predictor_rows", "Rows the predictor scored", registry=self.registry
        )
        self.predictor_call_seconds = Histogram(
            "explainer_predictor_call_seconds",
            "Time per predictor call, by outcome",
            ["outcome"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

        self.planned_rows = Gauge(
            "explainer_planned_rows",
            "Perturbation rows planned and not yet fitted, across requests (bounded at "
            "twice the predictor's calls in flight)",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "explainer_explanations_in_progress",
            ":explain requests accepted and not yet answered (refused past MAX_IN_FLIGHT)",
            registry=self.registry,
        )
        # Leak detectors, read at scrape time: asyncio tasks alive, and (Linux) the
        # process's open file descriptors and resident memory.
        self.tasks = Gauge(
            "explainer_event_loop_tasks", "asyncio tasks alive", registry=self.registry
        )
        ProcessCollector(registry=self.registry)

    def predictor_call(self, seconds: float, rows: int, ok: bool) -> None:
        self.predictor_call_seconds.labels("ok" if ok else "error").observe(seconds)
        if ok:
            self.predictor_rows.inc(rows)
