"""A small aiohttp reverse proxy on 127.0.0.1 that injects faults between fastreg and a real
server: a share of requests get 500/503, have their connection reset, or are delayed."""

from __future__ import annotations

import asyncio
import io
import random
import threading
import time
from collections import Counter

import aiohttp
from aiohttp import web

from tests.servers import free_ports

_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}


class FaultProxy:
    def __init__(self, upstream: str, seed: int = 7, error_rate: float = 0.15, reset_rate: float = 0.05,
                 delay_rate: float = 0.1, port: int | None = None, delay: float = 0.2) -> None:
        self.upstream = upstream.rstrip("/")
        self.rnd = random.Random(seed)
        self.rates = (error_rate, reset_rate, delay_rate)
        self.delay = delay  # seconds a delayed request waits
        self.down_until = 0.0  # monotonic time until which every request fails (outage())
        self.counts: Counter[str] = Counter()
        [self.port] = [port] if port else free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    def outage(self, seconds: float) -> None:
        """From now on, for `seconds`, every request gets 503 (a store restarting)."""
        self.down_until = time.monotonic() + seconds

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if time.monotonic() < self.down_until:
            self.counts["outage"] += 1
            return web.Response(status=503, content_type="application/xml",
                                body=b"<Error><Code>ServiceUnavailable</Code><Message>restarting</Message></Error>")
        error, reset, delay = self.rates
        r = self.rnd.random()
        if r < error:
            self.counts["error"] += 1
            status = self.rnd.choice([500, 503])
            return web.Response(status=status, content_type="application/xml",
                                body=b"<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>")
        if r < error + reset:
            self.counts["reset"] += 1
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if r < error + reset + delay:
            self.counts["delay"] += 1
            await asyncio.sleep(self.delay)
        self.counts["forwarded"] += 1
        if request.method == "HEAD":
            self.counts["heads"] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        headers["Host"] = request.headers.get("Host", "")
        assert self._session is not None
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=io.BytesIO(body), allow_redirects=False) as resp:
            data = await resp.read()
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
            self.counts["bytes_out"] += len(data)
            self.counts["requests"] += 1
            if request.method == "HEAD":
                # No body, but the client must see the object's real Content-Length.
                head = web.StreamResponse(status=resp.status, headers=out_headers)
                head.content_length = int(resp.headers.get("Content-Length", "0"))
                await head.prepare(request)
                return head
            return web.Response(status=resp.status, headers=out_headers, body=data)
