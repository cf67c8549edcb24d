"""The one composition root: settings in, a running engine out.

``explainer serve`` (the HTTP app's ``cleanup_ctx``), ``explainer batch`` and each Dask
worker build their engine here, and nowhere else, so a setting — a CA bundle, a timeout,
a batch limit — can never apply to one path and not another. What it builds, in order:

    background store ─┐
    executor ─────────┤
    HTTP session (TLS context from PREDICTOR_CA_BUNDLE)
       └─ transport (v2 REST | v1 REST | v2 gRPC | a joblib model in-process)
            └─ predictor client (batching, coalescing, concurrency, output)
                 └─ engine (the explainers and their budgets)

and it closes them in the reverse order.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from explainer.background_data import BackgroundStore, LoadedBackground
from explainer.engine import Budget, Engine
from explainer.features import from_background
from explainer.predictor import CallObserver, ClientPolicy, PredictorClient, Transport
from explainer.settings import Settings
from explainers.kernel_shap import KernelShap
from explainers.lime import Lime

EXECUTOR_THREADS = 2


@dataclass(frozen=True)
class Service:
    settings: Settings
    engine: Engine
    predictor: PredictorClient


def budgets(settings: Settings) -> tuple[Budget, ...]:
    """The explainers, in response order, with their configured sample budgets."""
    return (
        Budget(Lime(), settings.lime_samples, settings.lime_max_samples, "lime_samples",
               "LIME_MAX_SAMPLES"),
        Budget(KernelShap(), settings.shap_samples, settings.shap_max_samples, "shap_samples",
               "SHAP_MAX_SAMPLES"),
    )  # fmt: skip


def policy(settings: Settings) -> ClientPolicy:
    return ClientPolicy(
        datatype=settings.predictor_datatype,
        datatype_from_metadata="predictor_datatype" not in settings.model_fields_set,
        output=settings.predictor_output,
        max_batch=settings.predictor_max_batch,
        max_concurrency=settings.predictor_max_concurrency,
        coalesce=settings.predictor_coalesce,
        coalesce_wait=settings.predictor_batch_wait_ms / 1000,
    )


def ssl_context(settings: Settings) -> ssl.SSLContext | bool:
    if settings.predictor_ca_bundle:
        return ssl.create_default_context(cafile=settings.predictor_ca_bundle)
    return True


def transport(
    settings: Settings, session: aiohttp.ClientSession, model_file: str | None = None
) -> Transport:
    """The transport for ``PREDICTOR_PROTOCOL`` (or for a model file, in-process)."""
    name = settings.model_name or "model"
    if model_file:
        from explainer.predictor.local import LocalModel

        try:
            return LocalModel(model_file, name)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--model_file {model_file}: {exc}") from None
    timeout, retries = settings.predictor_timeout, settings.predictor_retries
    if settings.predictor_protocol == "grpc-v2":
        from explainer.predictor.grpc import GrpcV2  # imports grpc only when used

        return GrpcV2(
            settings.predictor_address(),
            name,
            use_ssl=settings.predictor_tls(),
            ca_bundle=settings.predictor_ca_bundle,
            max_message_bytes=settings.predictor_grpc_max_message_bytes,
            timeout=timeout,
            retries=retries,
        )
    if settings.predictor_protocol == "openai":
        from explainer.predictor.openai import OpenAICompletions

        return OpenAICompletions(
            session,
            settings.openai_url(),
            name,
            timeout=timeout,
            retries=retries,
            max_prompts=settings.openai_max_prompts,
            empty_context=settings.openai_empty_context,
        )
    from explainer.predictor.rest import V1Rest, V2Rest

    if settings.predictor_protocol == "v1":
        return V1Rest(session, settings.predictor_url(), name, timeout=timeout, retries=retries)
    return V2Rest(
        session,
        settings.predictor_url(),
        name,
        timeout=timeout,
        retries=retries,
        binary=settings.predictor_binary,
    )


@asynccontextmanager
async def open_service(
    settings: Settings,
    background: LoadedBackground | None,
    *,
    observe: CallObserver | None = None,
    model_file: str | None = None,
    feature_names: list[str] | None = None,
) -> AsyncIterator[Service]:
    """The engine for ``settings``, over ``background`` (None: a reservoir of the rows
    asked about). ``feature_names`` (a dataset's header) come after the settings' and
    before the background's; the predictor's metadata, adopted later, wins over all."""
    given = settings.feature_names or feature_names or (background.names if background else None)
    names = given
    if names is None and background is not None:  # the schema's; requests may name them
        names = [f"inputs-{i}" for i in range(background.rows.shape[1])]
    if names is not None and background is not None and len(names) != background.rows.shape[1]:
        raise ValueError(
            f"{len(names)} feature names for a background of {background.rows.shape[1]} columns"
        )
    schema, rows = (None, None)
    if names is not None:
        schema, rows = from_background(
            names,
            background.rows if background else None,
            settings.categorical_features,
            settings.integer_features,
        )
    store = BackgroundStore(
        rows,
        source=background.source if background else "reservoir of inputs seen",
        shap_size=settings.shap_background_size,
        reservoir_size=settings.background_reservoir_size,
        seed=settings.seed,
        categorical=schema.categorical if schema and schema.mixed else None,
        integer=schema.integer if schema and schema.mixed else None,
    )
    features = len(names) if names else None
    executor = ThreadPoolExecutor(max_workers=EXECUTOR_THREADS, thread_name_prefix="explainer")
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=settings.predictor_max_concurrency * 2, ssl=ssl_context(settings)
        ),
    )
    client: PredictorClient | None = None
    try:
        wire = transport(settings, session, model_file)
        client = PredictorClient(wire, policy(settings), observe)
        engine = Engine(
            settings,
            client,
            store,
            executor,
            budgets(settings),
            features=features,
            feature_names=given,
            schema=schema,
        )
        yield Service(settings, engine, client)
    finally:
        if client is not None:
            await client.close()
        await session.close()
        executor.shutdown(wait=True, cancel_futures=True)
