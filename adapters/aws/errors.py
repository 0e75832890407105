"""The one place boto3 / botocore exceptions become polybus errors.

Modelled on httpx's ``map_httpcore_exceptions``: every SDK call site runs
inside ``with translate_errors("what it does"):`` and whatever the SDK raises
leaves as AdapterError, chained with ``raise ... from exc`` so the AWS error
stays available as ``__cause__`` (``is_not_found(err.__cause__)``). Messages
carry the AWS error code and message, which never contain credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

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


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn boto3/botocore exceptions raised inside the block into AdapterError naming `action`."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", "")
        raise AdapterError(f"aws: {action} failed: {code}: {message}") from exc
    except BotoCoreError as exc:
        raise AdapterError(f"aws: {action} failed: {exc}") from exc


def error_code(exc: BaseException | None) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(exc: BaseException | None) -> bool:
    """True when AWS answered that the resource does not exist (also through a translated error)."""
    if isinstance(exc, AdapterError):
        exc = exc.__cause__
    return error_code(exc) in NOT_FOUND_CODES
