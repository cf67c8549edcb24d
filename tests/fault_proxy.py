"""A fault-injecting HTTP proxy for the tests: it forwards to the real MLServer and, on
inference calls (``POST``), misbehaves as ``mode`` says. It runs on the test's own event
loop, on a fixed loopback port, and can be stopped and started again on that port to play
a predictor that goes away and comes back."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp import web

MODES = (
    "pass",  # forward unchanged
    "drop",  # close the connection without an answer
    "reset",  # send the headers and part of the body, then abort the connection
    "slow",  # wait `delay` seconds, then forward
    "text-500",  # 500 with a plain-text body
    "busy-503",  # 503, as a restarting server or a gateway says
    "invalid-json",  # 200 with a body that is not JSON
    "wrong-shape",  # 200, one value missing from the output tensor
    "nan",  # 200, the scores are null (NaN)
)


class FaultProxy:
    def __init__(self, upstream: str, port: int) -> None:
        self.upstream = upstream
        self.port = port
        self.mode = "pass"
        self.failures = 0  # with mode != pass: misbehave this many times, then pass (0: always)
        self.delay = 5.0
        self.inference_calls = 0
        self.call_rows: list[int] = []  # rows in each inference call forwarded
        self.poison: float | None = None  # refuse (400) any call with a row holding this value
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = self._session or aiohttp.ClientSession()
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        await self.stop()
        if self._session is not None:
            await self._session.close()

    def set(self, mode: str, failures: int = 0) -> None:
        assert mode in MODES, mode
        self.mode, self.failures, self.inference_calls = mode, failures, 0
        self.call_rows = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        mode = "pass"
        if request.method == "POST":
            self.inference_calls += 1
            if self.failures == 0 or self.inference_calls <= self.failures:
                mode = self.mode
            tensor = orjson.loads(body)["inputs"][0]
            if self.poison is not None and self.poison in tensor["data"]:
                return web.json_response({"error": "value out of range"}, status=400)
            self.call_rows.append(int(tensor["shape"][0]))
        if mode == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()  # never sent: the connection is gone
        if mode == "slow":
            await asyncio.sleep(self.delay)
        if mode == "text-500":
            return web.Response(status=500, text="Internal Server Error: out of memory")
        if mode == "busy-503":
            return web.Response(status=503, text="upstream connect error")
        status, payload, content_type = await self._forward(request, body)
        if mode == "reset":
            response = web.StreamResponse(status=200, headers={"Content-Length": str(len(payload))})
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            assert request.transport is not None
            request.transport.abort()
            return response
        if mode == "invalid-json":
            payload = b'{"outputs": [{"name": "predict", "data": [0.1, 0.2'
        elif mode in ("wrong-shape", "nan") and status == 200:
            parsed = orjson.loads(payload)
            data: list[Any] = parsed["outputs"][0]["data"]
            if mode == "wrong-shape":
                data.pop()
            else:  # JSON has no NaN; what servers emit instead is null
                parsed["outputs"][0]["data"] = [None] * len(data)
            payload = orjson.dumps(parsed)
        return web.Response(status=status, body=payload, content_type=content_type)

    async def _forward(self, request: web.Request, body: bytes) -> tuple[int, bytes, str]:
        assert self._session is not None
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as answer:
            return answer.status, await answer.read(), answer.content_type
