"""Fixtures for the AWS adapter's own tests (the moto server comes from tests/fixtures/aws.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest

from polybus.adapters.aws.emulator import AwsEmulator
from tests.aws.faults import FaultProxy
from tests.aws.helpers import AwsClients


@pytest.fixture
def fault_proxy(aws_env: AwsEmulator) -> Iterator[FaultProxy]:
    """A recording, fault-injecting proxy in front of the (reset) moto server."""
    proxy = FaultProxy(aws_env.endpoint)
    yield proxy
    proxy.close()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique resource names per test."""
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"{base}-{suffix}"


@pytest.fixture
def aws_clients(aws_env: AwsEmulator) -> Iterator[AwsClients]:
    """boto3 EventBridge and SQS clients talking to the moto server."""
    session = boto3.session.Session(region_name="us-east-1")
    clients = AwsClients(
        events=session.client("events", endpoint_url=aws_env.endpoint),
        sqs=session.client("sqs", endpoint_url=aws_env.endpoint),
    )
    yield clients
    clients.events.close()
    clients.sqs.close()
