"""Clients of ``make bench``: sequential and concurrent ``:explain`` callers, and the
predictor alone scoring an explanation's rows through this project's own transport."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import orjson

from explainer.predictor import ClientPolicy, PredictorClient, Transport
from explainer.predictor.grpc import GrpcV2
from explainer.predictor.rest import V2Rest
from explainers import kernel_shap, lime
from explainers.background import build
from explainers.maskers.numeric import LimeStatistics, NumericRows


def explanation_rows(
    x: np.ndarray, background: np.ndarray, kind: str, lime_samples: int, shap_samples: int
) -> np.ndarray:
    """The rows the explainer sends for one row (its plans, seeded as it seeds them)."""
    parts = []
    if kind in ("LIME", "ALL"):
        stats = LimeStatistics.from_training(background)
        parts.append(lime.plan(NumericRows(x, statistics=stats), lime_samples, 0).rows)
    if kind in ("SHAP", "ALL"):
        summary = build(background, background.shape[0])
        parts.append(kernel_shap.plan(NumericRows(x, summary), shap_samples, 0).rows)
    return np.concatenate(parts)


def percentile(times: list[float], q: float) -> float:
    return float(np.percentile(times, q))


@dataclass
class Sequential:
    first: float
    times: list[float]  # after the first
    answer: dict[str, Any]

    @property
    def median(self) -> float:
        return statistics.median(self.times)


async def sequential(
    url: str,
    instances: list[list[float]],
    repeats: int,
    between: Callable[[], Awaitable[None]] | None = None,
) -> Sequential:
    """One client: the first request after start, then ``repeats`` more (other rows).
    ``between``, untimed here, runs after each request: the predictor-alone calls that
    are interleaved with the explanations, so both meet the same machine."""
    times, answer = [], {}
    async with aiohttp.ClientSession() as session:
        for i in range(repeats + 1):
            body = orjson.dumps({"instances": [instances[i % len(instances)]]})
            start = time.perf_counter()
            async with session.post(url, data=body) as response:
                payload = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {payload[:300]!r}")
            times.append(time.perf_counter() - start)
            if i == 0:
                answer = orjson.loads(payload)
            if between is not None:
                await between()
    return Sequential(times[0], times[1:], answer)


@dataclass
class Load:
    explanations: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.explanations / self.seconds


async def load(url: str, instances: list[list[float]], clients: int, seconds: float) -> Load:
    """``clients`` concurrent clients, each sending its next request when answered."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + seconds
    timeout = aiohttp.ClientTimeout(total=600)

    async def client(k: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < deadline:
            body = orjson.dumps({"instances": [instances[i % len(instances)]]})
            began = time.perf_counter()
            async with session.post(url, data=body) as response:
                await response.read()
                if response.status == 200:
                    latencies.append(time.perf_counter() - began)
                else:
                    errors += 1
            i += clients

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(k, session) for k in range(clients)))
    return Load(len(latencies), errors, time.perf_counter() - start, latencies)


def predictor_client(
    session: aiohttp.ClientSession, protocol: str, address: str, model: str, datatype: str = "FP64"
) -> PredictorClient:
    transport: Transport = (
        GrpcV2(address, model) if protocol == "grpc-v2" else V2Rest(session, address, model)
    )
    return PredictorClient(transport, ClientPolicy(datatype=datatype, datatype_from_metadata=False))


class Alone:
    """The predictor scoring exactly ``rows``, split and sent as the explainer sends them
    (the limit): ``once`` times one such scoring; open with ``async with``."""

    def __init__(
        self, protocol: str, address: str, model: str, rows: np.ndarray, datatype: str = "FP64"
    ) -> None:
        self.args = (protocol, address, model, datatype)
        self.rows = rows
        self.times: list[float] = []
        self.bytes_on_wire = 0

    async def __aenter__(self) -> Alone:
        protocol, address, model, datatype = self.args
        self._session = aiohttp.ClientSession()
        self.predictor = predictor_client(self._session, protocol, address, model, datatype)
        await self.predictor.load_metadata()
        await self.predictor.infer(self.rows)  # warm
        self.predictor.transport.bytes_sent = self.predictor.transport.bytes_received = 0
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.times:
            wire = self.predictor.transport.bytes_sent + self.predictor.transport.bytes_received
            self.bytes_on_wire = wire // len(self.times)
        await self.predictor.close()
        await self._session.close()

    async def once(self) -> None:
        start = time.perf_counter()
        await self.predictor.infer(self.rows)
        self.times.append(time.perf_counter() - start)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


async def predictor_rows_per_second(
    protocol: str, address: str, model: str, rows: np.ndarray, clients: int, seconds: float
) -> float:
    """The predictor's own throughput: ``clients`` callers each sending ``rows`` again and
    again through this project's client for ``seconds``."""
    async with aiohttp.ClientSession() as session:
        predictor = predictor_client(session, protocol, address, model)
        try:
            await predictor.load_metadata()
            await predictor.infer(rows)
            sent = 0
            start = time.perf_counter()
            deadline = start + seconds

            async def client() -> None:
                nonlocal sent
                while time.perf_counter() < deadline:
                    await predictor.infer(rows)
                    sent += rows.shape[0]

            await asyncio.gather(*(client() for _ in range(clients)))
            return sent / (time.perf_counter() - start)
        finally:
            await predictor.close()
