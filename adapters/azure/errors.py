"""The one place azure-core / azure-eventgrid exceptions become polybus errors.

Modelled on httpx's ``map_httpcore_exceptions``: every SDK call site runs
inside ``with translate_errors("what it does"):`` and whatever the SDK (or
the emulator's admin API) raises leaves as AdapterError, chained with
``raise ... from exc`` so the Azure error stays available as ``__cause__``.
A publish passes the ids of the events in the request: an HTTP refusal then
becomes a PublishError naming each of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from azure.core.exceptions import AzureError, HttpResponseError

from polybus.core.errors import AdapterError, PublishError


class AdminError(Exception):
    """The emulator's admin API refused a request (raised by provisioning.EmulatorAdmin)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@contextmanager
def translate_errors(action: str, event_ids: Sequence[str] = ()) -> Iterator[None]:
    """Turn SDK and admin-API exceptions raised inside the block into polybus errors.

    With `event_ids` (a publish), an HTTP refusal is a PublishError naming each event.
    """
    try:
        yield
    except AdminError as exc:
        raise AdapterError(f"azure {action}: emulator admin API said {exc}") from exc
    except HttpResponseError as exc:
        reason = f"HTTP {exc.status_code}: {exc.message}"
        if event_ids:
            raise PublishError(dict.fromkeys(event_ids, reason)) from exc
        raise AdapterError(f"azure {action}: {reason}") from exc
    except AzureError as exc:
        raise AdapterError(f"azure {action}: {type(exc).__name__}: {exc.message}") from exc


def status_of(error: BaseException) -> int | None:
    """The HTTP status behind a translated error (None when there was no HTTP answer)."""
    cause = error.__cause__
    if isinstance(cause, HttpResponseError):
        return cause.status_code
    if isinstance(cause, AdminError):
        return cause.status or None
    return None
