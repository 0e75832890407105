"""The emulator's one error: a gRPC status code and the message Pub/Sub would send."""

from __future__ import annotations

import grpc


class RpcError(Exception):
    """A failed call: the gRPC status code and the message Pub/Sub would send."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
