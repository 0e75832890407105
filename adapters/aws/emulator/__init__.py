"""A local AWS for development and tests: moto's server (EventBridge + SQS) on loopback.

`start(host, port)` returns an `AwsEmulator` (a core.emulation.RunningEmulator)
with the server running in a daemon thread; its `settings()` are the `[aws]`
table that points the adapter at it and its `environment()` the dummy
credentials (and endpoint) boto3 reads. docs/aws.md lists where moto differs
from AWS. The adapter itself never imports this package.
"""

from __future__ import annotations

from polybus.adapters.aws.emulator.moto_server import AwsEmulator, start

__all__ = ["AwsEmulator", "start"]
