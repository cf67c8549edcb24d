"""The server's lifetime in Kubernetes: serve until SIGTERM, then stop in the order it
needs — readiness false and new work refused while the listener stays open (aiohttp's
``run_app`` closes the listener first, which is why this runner is our own), then the
work in progress drained, all inside the pod's 30 s grace period."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from explainer.server.app import RUNTIME
from explainer.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_SECONDS = 20.0  # below Kubernetes' 30 s grace period
SHUTDOWN_DELAY_SECONDS = 1.0  # not ready, still listening: time for endpoints to update


async def drain(app: web.Application, delay: float, timeout: float) -> int:
    """Begin a graceful stop: readiness turns false and new explanations get 503 at once;
    after ``delay`` (for load balancers to see it) wait up to ``timeout`` for the
    explanations in progress to finish. Returns how many were still running."""
    runtime = app.get(RUNTIME)
    if runtime is None:
        return 0
    runtime.stopping = True
    log.info("stopping: not ready; %d explanation(s) in progress", runtime.in_flight)
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while runtime.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if runtime.in_flight:
        log.warning("stopping with %d explanation(s) unfinished", runtime.in_flight)
    return runtime.in_flight


async def run_until_signalled(app: web.Application, settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully: readiness false and new
    explanations refused at once; after ``SHUTDOWN_DELAY_SECONDS`` (for Kubernetes to take
    the pod out of its endpoints) the explanations in progress are given the rest of
    ``SHUTDOWN_TIMEOUT_SECONDS`` to finish; then the listener closes and the process exits,
    all within Kubernetes' 30 s grace period."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.http_port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        await drain(app, SHUTDOWN_DELAY_SECONDS, SHUTDOWN_TIMEOUT_SECONDS - SHUTDOWN_DELAY_SECONDS)
    finally:
        await runner.cleanup()
