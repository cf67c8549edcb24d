"""The aiohttp application: routes, error rendering, and long-lived resources."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from explainer.background_data import LoadedBackground, load_background_setting
from explainer.composition import open_service
from explainer.engine import Engine
from explainer.errors import ExplainerError, ModelNotFound, Overloaded, ShuttingDown
from explainer.payloads import (
    ExplainParameters,
    RowsRequest,
    decode_request,
    decode_rows_request,
    encode_explanations,
    error_body,
)
from explainer.predictor import PredictorClient
from explainer.server import openapi
from explainer.server.metrics import Metrics
from explainer.settings import Settings, env_name
from explainers.warm_up import warm_up

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RETRY_AFTER_SECONDS = 1


@dataclass
class Runtime:
    """Everything a request needs, created in ``cleanup_ctx`` and torn down with it."""

    engine: Engine
    predictor: PredictorClient
    warmed: asyncio.Event
    in_flight: int = 0
    stopping: bool = False  # SIGTERM seen: not ready, new explanations refused


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
RUNTIME = web.AppKey("runtime", Runtime)
BACKGROUND = web.AppKey("background", LoadedBackground)


def create_app(settings: Settings, background: LoadedBackground | None = None) -> web.Application:
    """The explainer app. ``background`` overrides ``settings.background_data`` (the
    demo passes its training data directly)."""
    if not settings.model_name or not settings.predictor_host:
        raise ValueError("model_name and predictor_host are required")
    if background is None and settings.background_data:
        rows, names = load_background_setting(settings)
        background = LoadedBackground(rows, names, "BACKGROUND_DATA")
    columns = background.rows.shape[1] if background is not None else None
    if settings.feature_names and columns is not None and len(settings.feature_names) != columns:
        raise ValueError(
            f"invalid setting {env_name('feature_names')} / --feature_names: it names "
            f"{len(settings.feature_names)} features but the background has {columns} columns"
        )
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[_observe, _render_errors]
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    if background is not None:
        app[BACKGROUND] = background
    app.cleanup_ctx.append(_runtime)
    name = r"{name:[^/:]+}"
    app.router.add_post(f"/v1/models/{name}:explain", explain)
    app.router.add_post(f"/v1/models/{name}:predict", predict)
    app.router.add_get(f"/v1/models/{name}", model_status)
    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get(f"/v2/models/{name}/ready", model_ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi_document)
    return app


# ---- resources ---------------------------------------------------------------------------


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    async with open_service(
        app[SETTINGS], app.get(BACKGROUND), observe=app[METRICS].predictor_call
    ) as service:
        runtime = Runtime(service.engine, service.predictor, asyncio.Event())
        app[RUNTIME] = runtime
        task = asyncio.create_task(_warm(runtime))
        try:
            yield
        finally:
            task.cancel()


async def _warm(runtime: Runtime) -> None:
    """Compile the kernels, then learn what the predictor offers. ``warmed`` is set once
    the kernels are compiled and the predictor was asked once; if it could not answer,
    asking goes on in the background (readiness asks the predictor itself)."""
    await asyncio.to_thread(warm_up)
    engine, predictor = runtime.engine, runtime.predictor
    while True:
        try:
            metadata = await predictor.load_metadata()
            break
        except ExplainerError as exc:
            log.warning("predictor metadata not available yet: %s", exc.message)
            runtime.warmed.set()
            await asyncio.sleep(1.0)
    engine.adopt(metadata)
    probe = engine.store.first_row()
    if probe is not None:
        # One whole explanation of a background row before readiness: it settles which
        # output to explain and runs every path once (allocation, encoding, the
        # predictor's own first large call), so the first request is like any other.
        try:
            await engine.explain(RowsRequest(probe, None, ExplainParameters(), encoded=True))
        except ExplainerError as exc:
            log.warning("warm-up explanation failed: %s", exc.message)
        except Exception:  # a bug must not keep the service from ever being ready
            log.exception("warm-up explanation failed")
    runtime.warmed.set()
    log.info("warmed up; explaining predictor output %s", predictor.output_name or "(default)")


# ---- middleware ----------------------------------------------------------------------------


def _json(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


@web.middleware
async def _render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ExplainerError as exc:
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 429 else None
        return _json(exc.status, error_body(exc.message), retry)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json(exc.status, error_body(_http_message(request, exc)), _allow(exc))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _json(500, error_body("internal error; the explainer's log has the cause"))


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no route {request.path}; explain with POST /v1/models/<name>:explain"
    if exc.status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
        return f"method {request.method} is not allowed on {request.path}; use {allowed}"
    if exc.status == 413:
        limit = request.app[SETTINGS].max_body_bytes
        return f"request body is larger than {limit} bytes (MAX_BODY_BYTES); send fewer rows"
    return exc.reason


def _allow(exc: web.HTTPException) -> dict[str, str] | None:
    allowed = getattr(exc, "allowed_methods", None)
    return {"Allow": ", ".join(sorted(allowed))} if exc.status == 405 and allowed else None


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    response = await handler(request)
    response.headers["X-Request-Id"] = request_id
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    request.app[METRICS].requests.labels(route, str(response.status)).inc()
    return response


# ---- handlers ------------------------------------------------------------------------------


def _refuse_large_body(request: web.Request) -> None:
    """A declared Content-Length over the limit is refused before a byte of the body is
    read (aiohttp then closes the connection rather than drain it); a chunked body is cut
    off by aiohttp as soon as it passes the limit."""
    length = request.content_length
    if length is not None and length > request.app[SETTINGS].max_body_bytes:
        raise web.HTTPRequestEntityTooLarge(
            max_size=request.app[SETTINGS].max_body_bytes, actual_size=length
        )


def _runtime_of(request: web.Request) -> Runtime:
    name = request.match_info.get("name")
    settings = request.app[SETTINGS]
    if name is not None and name != settings.model_name:
        raise ModelNotFound(
            f"model '{name}' is not explained here; this explainer serves '{settings.model_name}'"
        )
    return request.app[RUNTIME]


async def explain(request: web.Request) -> web.Response:
    runtime = _runtime_of(request)
    settings, metrics = request.app[SETTINGS], request.app[METRICS]
    start = time.perf_counter()
    kind: str = settings.explainer_type
    if runtime.stopping:
        metrics.explains.labels(kind, "503").inc()
        raise ShuttingDown("the explainer is shutting down; send the request to another replica")
    if runtime.in_flight >= settings.max_in_flight:
        metrics.explains.labels(kind, "429").inc()
        raise Overloaded(
            f"{runtime.in_flight} explanations are in progress (MAX_IN_FLIGHT="
            f"{settings.max_in_flight}); retry after {RETRY_AFTER_SECONDS} s"
        )
    _refuse_large_body(request)
    runtime.in_flight += 1
    try:
        decoded = decode_request(await request.read())
        kind = decoded.parameters.explainer or kind
        explained = await runtime.engine.explain(decoded)
    except ExplainerError as exc:
        metrics.explains.labels(kind, str(exc.status)).inc()
        raise
    finally:
        runtime.in_flight -= 1
    body = encode_explanations(
        explained.rows, explained.features, explained.outputs, settings.response_format
    )
    metrics.explains.labels(kind, "200").inc()
    metrics.explain_seconds.labels(kind).observe(time.perf_counter() - start)
    for stage, seconds in explained.timings.items():
        metrics.stage_seconds.labels(stage).observe(seconds)
    timing = ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in explained.timings.items())
    return _json(200, body, {"Server-Timing": timing})


async def predict(request: web.Request) -> web.Response:
    runtime = _runtime_of(request)
    _refuse_large_body(request)
    decoded = decode_rows_request(await request.read())
    scores = await runtime.engine.predict(decoded)
    predictions = scores[:, 0] if scores.shape[1] == 1 else scores
    return _json(200, orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY))


async def _is_ready(runtime: Runtime) -> bool:
    return not runtime.stopping and runtime.warmed.is_set() and await runtime.predictor.ready()


async def model_status(request: web.Request) -> web.Response:
    runtime = _runtime_of(request)
    ok = await _is_ready(runtime)
    body = orjson.dumps({"name": request.app[SETTINGS].model_name, "ready": ok})
    return _json(200 if ok else 503, body)


async def model_ready(request: web.Request) -> web.Response:
    return await model_status(request)


async def ready(request: web.Request) -> web.Response:
    ok = await _is_ready(request.app[RUNTIME])
    return _json(200 if ok else 503, orjson.dumps({"ready": ok}))


async def openapi_document(request: web.Request) -> web.Response:
    return _json(200, orjson.dumps(openapi.document(request.app[SETTINGS].model_name or "model")))


async def live(request: web.Request) -> web.Response:
    return _json(200, orjson.dumps({"live": True}))


async def metrics(request: web.Request) -> web.Response:
    request.app[METRICS].tasks.set(len(asyncio.all_tasks()))
    runtime = request.app.get(RUNTIME)
    if runtime is not None:
        request.app[METRICS].planned_rows.set(runtime.engine.budget.used)
        request.app[METRICS].in_flight.set(runtime.in_flight)
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
