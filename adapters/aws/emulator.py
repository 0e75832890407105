"""A local AWS for development and tests: moto's server on a loopback port.

moto (the `moto[server]` package, installed with polybus[test]) implements
EventBridge and SQS well enough for this adapter; docs/aws.md lists where it
differs from AWS. `start()` returns at once with the server running in a
daemon thread; point the adapter at it with the printed configuration.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from typing import Any

from polybus.core.errors import AdapterError


@dataclass
class AwsEmulator:
    """A running moto server."""

    server: Any
    endpoint_url: str

    def config(self) -> dict[str, str]:
        """The `aws` configuration section that talks to this emulator."""
        return {"region": "us-east-1", "endpoint_url": self.endpoint_url}

    def reset(self) -> None:
        """Forget every bus, rule, queue and message (POST /moto-api/reset)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def stop(self) -> None:
        """Stop the server."""
        self.server.stop()

    def __str__(self) -> str:
        section = json.dumps(self.config())
        return (
            f"moto (EventBridge + SQS) listening on {self.endpoint_url}\n"
            f"aws config: {section}\n"
            "credentials: any, from the standard chain, e.g. AWS_ACCESS_KEY_ID=testing "
            "AWS_SECRET_ACCESS_KEY=testing"
        )


def start(host: str = "127.0.0.1", port: int = 0) -> AwsEmulator:
    """Start moto's ThreadedMotoServer on host:port (0 picks a free port)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise AdapterError(
            "aws emulator needs moto: pip install 'moto[server,events,sqs]'"
        ) from exc
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return AwsEmulator(server=server, endpoint_url=f"http://{bound_host}:{bound_port}")
