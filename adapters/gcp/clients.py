"""Creating the google-cloud-pubsub clients, and translating their errors in one place.

With `emulator_host` set, the clients get an insecure channel to it and
anonymous credentials, exactly what the client does for PUBSUB_EMULATOR_HOST,
but without changing the process environment (other clients in the process
keep their endpoint). The channel lifts gRPC's 4 MiB receive limit, as the
client's own channels do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import grpc
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from polybus.adapters.gcp.config import GcpConfig
from polybus.core.errors import AdapterError

_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]


def make_publisher(config: GcpConfig) -> Any:
    """A PublisherClient with the configured batching (and ordering when enabled)."""
    batch = pubsub_v1.types.BatchSettings(
        max_messages=config.batch_max_messages,
        max_bytes=config.batch_max_bytes,
        max_latency=config.batch_max_latency,
    )
    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=config.ordering_keys)
    kwargs: dict[str, Any] = {}
    if config.emulator_host:
        channel = grpc.insecure_channel(config.emulator_host, options=_CHANNEL_OPTIONS)
        kwargs["transport"] = PublisherGrpcTransport(
            channel=channel, host=config.emulator_host, credentials=AnonymousCredentials()
        )
        kwargs["client_options"] = {"api_endpoint": config.emulator_host}
    return pubsub_v1.PublisherClient(batch_settings=batch, publisher_options=options, **kwargs)


def make_subscriber(config: GcpConfig) -> Any:
    """A SubscriberClient (streaming pull, acks, administration of subscriptions)."""
    kwargs: dict[str, Any] = {}
    if config.emulator_host:
        channel = grpc.insecure_channel(config.emulator_host, options=_CHANNEL_OPTIONS)
        kwargs["transport"] = SubscriberGrpcTransport(
            channel=channel, host=config.emulator_host, credentials=AnonymousCredentials()
        )
        kwargs["client_options"] = {"api_endpoint": config.emulator_host}
    return pubsub_v1.SubscriberClient(**kwargs)


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Re-raise the client's and gRPC's errors as AdapterError naming `action`."""
    try:
        yield
    except api_exceptions.GoogleAPIError as exc:
        raise AdapterError(f"gcp: {action} failed: {exc}") from exc
    except grpc.RpcError as exc:
        raise AdapterError(f"gcp: {action} failed: {exc}") from exc


NotFound = api_exceptions.NotFound
AlreadyExists = api_exceptions.AlreadyExists
