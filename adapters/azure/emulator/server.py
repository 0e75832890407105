"""A local Azure Event Grid that the real azure-eventgrid clients talk to.

`start_emulator()` (or the package's `start()`) serves plain http on loopback from a background thread with
its own asyncio loop: basic topics (publish in CloudEvents or Event Grid
schema, key and SAS auth, push delivery to webhooks with the validation
handshakes, retries and dead-lettering) and namespace topics (publish, pull
delivery with locks). Topics and event subscriptions are created through a
small admin API (see routes.py), since real Azure manages them through ARM. `time_scale` multiplies every retry and release delay so
tests of the 10 s .. 12 h retry schedule run in milliseconds.

    with start_emulator() as emu:
        client = EventGridPublisherClient(emu.endpoint, AzureKeyCredential(emu.key),
                                          namespace_topic="orders")
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from polybus.adapters.azure.emulator.namespace import Namespace
from polybus.adapters.azure.emulator.push import BasicTopics
from polybus.adapters.azure.emulator.routes import Routes
from polybus.adapters.azure.emulator.sas import new_key

T = TypeVar("T")


class EventGridEmulator:
    """One emulated Event Grid (namespace plus basic topics) on a loopback port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        key: str | None = None,
        *,
        time_scale: float = 1.0,
        retry_jitter: float = 0.1,
        response_timeout: float = 30.0,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.key = key or new_key()
        self.time_scale = time_scale
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="eventgrid-emulator", daemon=True
        )
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.namespace = Namespace(self._loop.time, time_scale)
        self.basic = BasicTopics(
            self._client_session,
            self._loop.time,
            lambda: self.endpoint,
            time_scale=time_scale,
            jitter=retry_jitter,
            response_timeout=response_timeout,
            seed=seed,
        )
        self._started = False

    @property
    def endpoint(self) -> str:
        """The base URL to give the SDK clients, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def settings(self) -> Mapping[str, Any]:
        """The ``[azure]`` table pointing the adapter here (admin on: it provisions for itself)."""
        return {"endpoint": self.endpoint, "key": self.key, "admin": True}

    def environment(self) -> Mapping[str, str]:
        """The azure-eventgrid SDK reads no environment variable to find an endpoint."""
        return {}

    def topic_endpoint(self, topic: str) -> str:
        """A basic topic's publish URL (the endpoint a basic EventGridPublisherClient takes)."""
        return f"{self.endpoint}/{topic}/api/events"

    def start(self) -> EventGridEmulator:
        """Bind the port and start serving; returns self."""
        self._thread.start()
        self._call(self._start())
        self._started = True
        return self

    def stop(self) -> None:
        """Stop serving, cancel pending deliveries and join the thread (idempotent)."""
        if not self._started:
            return
        self._started = False
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the emulator's loop (the state lives there) and return its result."""

        async def call() -> T:
            return fn()

        return self._call(call())

    def __enter__(self) -> EventGridEmulator:
        return self if self._started else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EventGridEmulator(endpoint={self.endpoint!r})"

    # -- loop side ------------------------------------------------------------
    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=30)

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _start(self) -> None:
        app = Routes(self.key, self.namespace, self.basic).app()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def _stop(self) -> None:
        tasks = [
            t for subs in self.basic.subscriptions.values() for s in subs.values() for t in s.tasks
        ]
        self.basic.close()
        self.namespace.closed = True
        for subs in self.namespace.topics.values():
            for sub in subs.values():
                sub.wake()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await _cleanup(self._runner)
        if self._session is not None:
            await self._session.close()


async def _cleanup(runner: web.AppRunner) -> None:
    """Stop serving and close every connection, including ones accepted while stopping.

    A connection the listening socket accepted just before it closed gets its
    transport after the runner has looked at its connections; left open, it
    would be closed by the garbage collector with a ResourceWarning.
    """
    server = runner.server
    await runner.cleanup()
    await asyncio.sleep(0.05)  # let accepts already under way finish
    for protocol in list(server.connections if server is not None else ()):
        protocol.force_close()
    await asyncio.sleep(0)


def start_emulator(
    host: str = "127.0.0.1", port: int = 0, key: str | None = None
) -> EventGridEmulator:
    """Start an Event Grid emulator; use `.endpoint` and `.key`, then `.stop()` (or `with`)."""
    return EventGridEmulator(host, port, key).start()
