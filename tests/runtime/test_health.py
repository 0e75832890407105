"""The probe server: /healthz, /readyz (503 until ready), /metrics, and bad requests."""

from __future__ import annotations

import asyncio

from polybus.core.runtime.health import HealthServer, Probes


async def _request(port: int, raw: bytes) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


def test_probes_answer_by_state() -> None:
    """readyz follows the service's state; healthz is 200; metrics is the text it returns."""
    state = {"ready": False}

    async def main() -> list[tuple[int, str]]:
        server = HealthServer(Probes(lambda: state["ready"], lambda: "m 1\n"), "127.0.0.1", 0)
        await server.start()
        get = lambda path: _request(server.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())  # noqa: E731
        answers = [await get("/readyz")]
        state["ready"] = True
        answers += [
            await get("/readyz"),
            await get("/healthz"),
            await get("/metrics"),
            await get("/x"),
        ]
        answers.append(await _request(server.port, b"garbage\r\n\r\n"))
        answers.append(await _request(server.port, b"POST /readyz HTTP/1.1\r\n\r\n"))
        await server.stop()
        return answers

    answers = asyncio.run(main())
    assert [status for status, _ in answers] == [503, 200, 200, 200, 404, 400, 405]
    assert answers[3][1] == "m 1\n"


def test_readyz_body_lists_firing_alarms_without_failing_readiness() -> None:
    """A firing alarm is shown in the /readyz body; readiness itself stays 200."""

    async def main() -> tuple[int, str]:
        probes = Probes(lambda: True, lambda: "", lambda: "dlq-depth firing: dead_letters 3 > 0\n")
        server = HealthServer(probes, "127.0.0.1", 0)
        await server.start()
        answer = await _request(server.port, b"GET /readyz HTTP/1.1\r\n\r\n")
        await server.stop()
        return answer

    status, body = asyncio.run(main())
    assert status == 200
    assert body == "ready\ndlq-depth firing: dead_letters 3 > 0\n"
