"""`polybus emulate {aws,azure,gcp}` prints what to point a real client at, serves it, and stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def emulate(provider: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """Run `polybus emulate PROVIDER --port 0` and yield it with its first output lines."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cli.main import main; main()",
            "emulate",
            provider,
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline()]
    try:
        yield proc, lines
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_emulate_gcp_serves_the_real_client() -> None:
    """The printed PUBSUB_EMULATOR_HOST works for the real Pub/Sub client, and Ctrl-C stops it."""
    from google.cloud import pubsub_v1

    with emulate("gcp") as (proc, lines):
        match = re.match(r"export PUBSUB_EMULATOR_HOST=(\S+)", lines[0])
        assert match, lines
        os.environ["PUBSUB_EMULATOR_HOST"] = match.group(1)
        try:
            publisher = pubsub_v1.PublisherClient()
            path = publisher.topic_path("emulate-test", f"t-{uuid.uuid4().hex[:6]}")
            publisher.create_topic(name=path)
            assert publisher.get_topic(topic=path).name == path
            publisher.stop()
        finally:
            del os.environ["PUBSUB_EMULATOR_HOST"]
    assert proc.returncode == 0


def test_emulate_azure_serves_the_real_sdk() -> None:
    """The printed endpoint and key accept a namespace publish from the real azure-eventgrid SDK."""
    from azure.core.credentials import AzureKeyCredential
    from azure.core.messaging import CloudEvent as AzureCloudEvent
    from azure.eventgrid import EventGridPublisherClient

    from polybus.adapters.azure.admin import EmulatorAdmin

    with emulate("azure") as (proc, lines):
        assert proc.stdout is not None
        lines.append(proc.stdout.readline())
        endpoint = lines[0].split("=", 1)[1].strip()
        key = lines[1].split("=", 1)[1].strip()
        EmulatorAdmin(endpoint, key).put_namespace_topic("emulate-test")
        client = EventGridPublisherClient(
            endpoint, AzureKeyCredential(key), namespace_topic="emulate-test", retry_total=0
        )
        client.send([AzureCloudEvent(source="/emulate", type="com.example.test", data={"n": 1})])
        client.close()
    assert proc.returncode == 0


def test_emulate_aws_serves_boto3() -> None:
    """The printed endpoint_url serves EventBridge to real boto3."""
    import boto3

    with emulate("aws") as (proc, lines):
        assert proc.stdout is not None
        lines.append(proc.stdout.readline())
        match = re.search(r'"endpoint_url": "([^"]+)"', lines[1])
        assert match, lines
        client = boto3.client(
            "events",
            endpoint_url=match.group(1),
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        names = [bus["Name"] for bus in client.list_event_buses()["EventBuses"]]
        assert "default" in names
    assert proc.returncode == 0
