"""The one place the gcp adapter turns google-cloud-pubsub and gRPC errors into polybus errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
from google.api_core import exceptions as api_exceptions
from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions

from polybus.core.errors import AdapterError

_SDK_ERRORS = (
    api_exceptions.GoogleAPIError,  # status codes, retries given up, publish failures
    grpc.RpcError,  # the channel itself
    publisher_exceptions.MessageTooLargeError,  # the client's own PublishRequest limit
)


@contextlib.contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise the client's and gRPC's errors as AdapterError naming `action` (``raise from``)."""
    try:
        yield
    except _SDK_ERRORS as exc:
        raise AdapterError(f"gcp: {action} failed: {exc}") from exc


def is_not_found(exc: BaseException | None) -> bool:
    """True when Pub/Sub answered NOT_FOUND (also through a translated AdapterError)."""
    if isinstance(exc, AdapterError):
        exc = exc.__cause__
    return isinstance(exc, api_exceptions.NotFound)
