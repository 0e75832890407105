"""The request side of a live run: one Starlette service per called station, on uvicorn, on loopback.

Each station that some call targets listens on its own port (127.0.0.1, a
free port). ``POST /visit`` with the flow id and key in headers serves one
visit (queue for a worker, serve, make its own calls over HTTP) and answers
200 (ok), 500 (error) or 504 (a call of its own timed out). The caller's
timeout, retries and fan-out are the model's (`LiveModel._attempt`): a
timed-out request is abandoned by the caller, but the callee keeps working,
as in the simulation. The load generator calls the entry station in process
(it stands in for the entry's own listener), so a flow's response is the
entry's work, its calls and their network hops.

Tracing: every call is a CLIENT span of the caller (child of the caller's
visit) whose W3C ``traceparent`` header makes the callee's SERVER span its
child, recorded in the project's span records (`core.tracing.records`) with
the rest of the run's spans, so ``sim from-traces`` can rebuild the calls.
A SERVER span starts when the visit got its worker (as in a worker-pool
server), so its wait in the queue is the gap after the CLIENT span's start.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from polybus.core.extras import Requirement
from polybus.core.tracing.carriers import TRACEPARENT, TraceParent, parse_traceparent
from polybus.sim.live.model import (
    LiveCtx,
    LiveModel,
    current_span,
    current_station,
    visit_started,
)
from polybus.sim.metrics import ERROR, OK, TIMEOUT, FlowStats

LIVE_HTTP = Requirement(
    "polybus sim live (request topologies over HTTP)", ("uvicorn", "starlette"), "live"
)
STATUS = {OK: 200, ERROR: 500, TIMEOUT: 504}
CODES = {v: k for k, v in STATUS.items()}


def targets(model: LiveModel) -> list[str]:
    """Stations some call targets (each gets an HTTP service)."""
    names = {t for s in model.top.services.values() for c in s.calls for t in c.targets}
    return sorted(names)


def service_app(model: LiveModel, station: str) -> Any:
    """The Starlette app of one synthetic service."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def visit(request: Request) -> Response:
        flow_id = request.headers.get("x-sim-flow", "")
        key = int(request.headers.get("x-sim-key", "0"))
        ctx = model.flows.get(flow_id) or LiveCtx(FlowStats(""), 0.0, flow_id)
        parent = parse_traceparent(request.headers.get(TRACEPARENT))
        span, received = secrets.token_hex(8), model.clock.now()
        token = current_span.set(span)  # the visit's own calls and publishes are its children
        try:
            status = await model.handle(model.stations[station], key, ctx)
        finally:
            current_span.reset(token)
        # the span starts on the worker (its queue wait is the gap); a refused visit got none
        start = max(received, visit_started.get())
        model.record_span(
            parent.trace_id if parent else ctx.trace, span, parent.span_id if parent else None,
            "POST /visit", "SERVER", station, start,
            {"http.request.method": "POST", "http.route": "/visit",
             "http.response.status_code": STATUS[status], "polybus.sim.station": station},
        )  # fmt: skip
        return Response(status_code=STATUS[status])

    return Starlette(routes=[Route("/visit", visit, methods=["POST"])])


class Client:
    """A minimal HTTP/1.1 keep-alive client for ``POST /visit`` on loopback.

    A general client (httpx) spends about 0.7 ms of Python per request on this
    machine, which would show up as latency the model does not have; this one
    writes the request line and headers and reads the status, about 0.14 ms
    per round trip with the server. Connections are pooled per port; a pooled
    connection the server closed meanwhile is replaced once.
    """

    def __init__(self) -> None:
        self.idle: dict[int, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def post(self, port: int, path: str, headers: dict[str, str]) -> int:
        """POST with an empty body; the response's status code."""
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{head}content-length: 0\r\n\r\n"
        ).encode("latin-1")
        pool = self.idle.setdefault(port, [])
        for reused in (True, False):
            if reused and not pool:
                continue
            reader, writer = (
                pool.pop() if reused else await asyncio.open_connection("127.0.0.1", port)
            )
            try:
                writer.write(request)
                status = await reader.readline()
                if not status:
                    raise ConnectionResetError("closed by the server")
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                writer.close()
                if reused:
                    continue  # a stale keep-alive connection: once more on a fresh one
                raise
            except BaseException:
                writer.close()
                raise
            pool.append((reader, writer))
            return int(status.split()[1])
        raise ConnectionError(f"no answer from 127.0.0.1:{port}")

    async def close(self) -> None:
        """Close every pooled connection."""
        for pool in self.idle.values():
            for _, writer in pool:
                writer.close()
        self.idle.clear()


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _server(uvicorn: Any, config: Any) -> Any:
    """A uvicorn Server that leaves the process's signal handlers alone.

    uvicorn swaps in its own SIGINT/SIGTERM handlers while it serves and puts
    back what it found when it stops. Several servers stopping in another
    order than they started leave one server's handler installed for good:
    the process then ignores SIGTERM, and so does every child it forks.
    A live run's servers are stopped by the run itself; Ctrl-C stays Python's.
    """

    class Server(uvicorn.Server):  # type: ignore[misc,name-defined]
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


@asynccontextmanager
async def serve(model: LiveModel) -> AsyncIterator[dict[str, int]]:
    """Start one service per called station; route the model's calls over HTTP; yield their ports."""
    LIVE_HTTP.check()
    import uvicorn

    servers, tasks, ports = [], [], {}
    for station in targets(model):
        sock = _socket()
        ports[station] = sock.getsockname()[1]
        config = uvicorn.Config(
            service_app(model, station), log_level="error", access_log=False, lifespan="off",
            timeout_keep_alive=60,
        )  # fmt: skip
        server = _server(uvicorn, config)
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.01)
    client = Client()

    async def call(target: str, key: int, ctx: LiveCtx) -> int:
        span, start = secrets.token_hex(8), model.clock.now()
        headers = {
            "x-sim-flow": ctx.id, "x-sim-key": str(key),
            TRACEPARENT: TraceParent(ctx.trace, span, True).header(),
        }  # fmt: skip
        attributes: dict[str, Any] = {
            "http.request.method": "POST", "server.address": "127.0.0.1",
            "server.port": ports[target], "polybus.sim.target": target,
        }  # fmt: skip
        try:
            code = await client.post(ports[target], "/visit", headers)
        except (OSError, ValueError, IndexError) as exc:
            attributes["error.type"] = type(exc).__name__
            code = 0
        else:
            attributes["http.response.status_code"] = code
        model.record_span(ctx.trace, span, current_span.get(), f"POST {target}", "CLIENT",
                          current_station.get(), start, attributes)  # fmt: skip
        return CODES.get(code, ERROR)

    model.caller = call
    try:
        yield ports
    finally:
        model.caller = model.call_local
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
