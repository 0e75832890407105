"""moto's ThreadedMotoServer wrapped as a RunningEmulator.

moto (the `moto[server,events,sqs]` package, installed with polybus[aws-emulator])
implements EventBridge and SQS well enough for the aws adapter. The server
starts in milliseconds on port 0 and `reset()` (POST /moto-api/reset) clears
every bus, rule, queue and message between tests.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.request
from typing import Any

from polybus.adapters.aws.config import DEFAULT_REGION
from polybus.core.errors import MissingExtraError

#: Any credentials work against moto; these keep boto3 from looking for real ones.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class AwsEmulator:
    """A running moto server: endpoint, the `[aws]` settings and environment that reach it."""

    def __init__(self, server: Any, endpoint: str, region: str = DEFAULT_REGION) -> None:
        self._server = server
        self._endpoint = endpoint
        self._region = region
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """The server's URL, e.g. ``http://127.0.0.1:5000``."""
        return self._endpoint

    @property
    def region(self) -> str:
        """The region the settings and environment name (moto accepts any)."""
        return self._region

    def settings(self) -> dict[str, str]:
        """The `[aws]` table that points an adapter at this emulator."""
        return {"region": self._region, "endpoint_url": self._endpoint}

    def environment(self) -> dict[str, str]:
        """Dummy credentials, the region, and AWS_ENDPOINT_URL (read by boto3 >= 1.28)."""
        return {
            **DUMMY_CREDENTIALS,
            "AWS_DEFAULT_REGION": self._region,
            "AWS_ENDPOINT_URL": self._endpoint,
        }

    def reset(self) -> None:
        """Forget every bus, rule, queue and message (POST /moto-api/reset)."""
        request = urllib.request.Request(f"{self._endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def stop(self) -> None:
        """Stop the server and release the port (a second call does nothing)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._server.stop()
        # ThreadedMotoServer.stop() shuts the loop down but leaves the socket bound.
        listening = getattr(self._server, "_server", None)
        if listening is not None:
            listening.server_close()

    def __str__(self) -> str:
        return (
            f"moto (EventBridge + SQS) listening on {self._endpoint}\n"
            f"aws settings: {json.dumps(self.settings())}\n"
            "credentials: any, from the standard chain, e.g. "
            + " ".join(f"{k}={v}" for k, v in DUMMY_CREDENTIALS.items())
        )


#: Seconds moto may take to listen before `start` gives up (it starts in milliseconds).
START_TIMEOUT = 5.0


def check_port(host: str, port: int) -> None:
    """OSError when host:port cannot be bound (as werkzeug binds it: SO_REUSEADDR)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None


def start(host: str = "127.0.0.1", port: int = 0) -> AwsEmulator:
    """Start moto's ThreadedMotoServer on host:port (0 picks a free port).

    A port that cannot be bound is an OSError at once. ThreadedMotoServer
    itself waits forever when its thread fails to bind, so its start runs
    in a helper thread given `START_TIMEOUT` seconds.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise MissingExtraError(
            "the aws emulator", exc.name or "moto.server", "aws-emulator"
        ) from exc
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    check_port(host, port)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    starter = threading.Thread(target=server.start, name="moto-start", daemon=True)
    starter.start()
    starter.join(START_TIMEOUT)
    if starter.is_alive():
        raise OSError(f"cannot listen on {host}:{port}: moto did not start in {START_TIMEOUT:g} s")
    bound_host, bound_port = server.get_host_and_port()
    return AwsEmulator(server, f"http://{bound_host}:{bound_port}")
