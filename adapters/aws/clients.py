"""boto3 clients for one adapter, and the one place SDK exceptions become AdapterError.

Credentials come from boto3's standard chain only; nothing here reads, logs or
prints them. Error messages carry the AWS error code and message, which never
contain credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from polybus.adapters.aws.config import DEFAULT_REGION, AwsConfig
from polybus.core.errors import AdapterError

# SQS queue-existence answers differ between the query and JSON protocols.
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NonExistentQueue",
    }
)


@dataclass
class Clients:
    """The EventBridge and SQS clients an adapter talks through."""

    events: Any
    sqs: Any
    region: str

    def close(self) -> None:
        """Close the clients' connection pools."""
        self.events.close()
        self.sqs.close()


def make_clients(config: AwsConfig, *, max_pool_connections: int = 20) -> Clients:
    """Clients for the configured region and endpoint, credentials from the standard chain."""
    session = boto3.session.Session(region_name=config.region)
    region = config.region or session.region_name or DEFAULT_REGION
    botocore_config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=max_pool_connections,
        # SQS long polls last up to 20 s: the read timeout must be longer.
        read_timeout=config.wait_time + 10,
    )
    with sdk_errors("create clients"):
        events = session.client(
            "events", region_name=region, endpoint_url=config.endpoint_url, config=botocore_config
        )
        sqs = session.client(
            "sqs", region_name=region, endpoint_url=config.endpoint_url, config=botocore_config
        )
    return Clients(events=events, sqs=sqs, region=region)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(exc: BaseException) -> bool:
    """True when AWS answered that the resource does not exist."""
    return error_code(exc) in NOT_FOUND_CODES


@contextmanager
def sdk_errors(action: str) -> Iterator[None]:
    """Translate boto3/botocore exceptions raised inside the block into AdapterError."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", "")
        raise AdapterError(f"aws: {action} failed: {code}: {message}") from exc
    except BotoCoreError as exc:
        raise AdapterError(f"aws: {action} failed: {exc}") from exc
