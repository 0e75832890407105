"""PutEvents batching and per-entry retries.

A PutEvents request takes 1-10 entries whose sizes (counted as AWS documents
it, see mapping.entry_size) total less than 256 KB. PutEvents answers 200 even
when some entries fail; each failed entry carries an ErrorCode. Throttling and
internal failures are retried, only for the failed entries, with exponential
backoff and full jitter; any other code (MalformedDetail, InvalidArgument,
AccessDeniedException, ...) can never succeed and is reported at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from polybus.adapters.aws.clients import sdk_errors
from polybus.adapters.aws.mapping import MAX_ENTRIES, REQUEST_LIMIT, Entry
from polybus.core.errors import EventTooLargeError, Problem

RETRYABLE_CODES = frozenset({"ThrottlingException", "InternalFailure", "InternalException"})


def check_entry_sizes(entries: Sequence[Entry]) -> None:
    """Raise EventTooLargeError naming every entry that could never fit in a request."""
    problems = [
        Problem(
            f"event {entry.event_id}",
            f"{entry.size} bytes",
            f"an EventBridge PutEvents request must total less than {REQUEST_LIMIT} bytes "
            "(14 for Time + UTF-8 bytes of Source, DetailType and Detail)",
        )
        for entry in entries
        if entry.size >= REQUEST_LIMIT
    ]
    if problems:
        raise EventTooLargeError("event too large for EventBridge", problems)


def plan_batches(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Split entries, in order, into requests of at most 10 entries totalling < 256 KB."""
    batches: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for entry in entries:
        if current and (len(current) == MAX_ENTRIES or size + entry.size >= REQUEST_LIMIT):
            batches.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    if current:
        batches.append(current)
    return batches


class Publisher:
    """Sends entries with PutEvents; returns the entries that failed for good."""

    def __init__(
        self,
        events_client: Any,
        *,
        sleep: Callable[[float], None],
        attempts: int = 6,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self._client = events_client
        self._sleep = sleep
        self._attempts = attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._rng = rng or random.Random()

    def backoff(self, retry: int) -> float:
        """Seconds before retry number `retry` (1-based): full jitter under an exponential cap."""
        cap = min(self._max_delay, self._base_delay * 2 ** (retry - 1))
        return self._rng.uniform(0, cap)

    def put(self, entries: Sequence[Entry]) -> dict[str, str]:
        """Publish entries in planned batches; map event id -> reason for each that failed."""
        failures: dict[str, str] = {}
        for batch in plan_batches(entries):
            failures.update(self._put_batch(batch))
        return failures

    def _put_batch(self, batch: list[Entry]) -> dict[str, str]:
        failures: dict[str, str] = {}
        pending = batch
        for attempt in range(1, self._attempts + 1):
            with sdk_errors("PutEvents"):
                response = self._client.put_events(Entries=[e.request for e in pending])
            if not response.get("FailedEntryCount"):
                return failures
            retry: list[Entry] = []
            reasons: dict[str, str] = {}
            for entry, result in zip(pending, response["Entries"], strict=True):
                code = result.get("ErrorCode")
                if not code:
                    continue
                reason = f"{code}: {result.get('ErrorMessage', '')}".rstrip(": ")
                if code in RETRYABLE_CODES:
                    retry.append(entry)
                    reasons[entry.event_id] = reason
                else:
                    failures[entry.event_id] = reason
            if not retry:
                return failures
            if attempt == self._attempts:
                for entry in retry:
                    failures[entry.event_id] = (
                        f"{reasons[entry.event_id]} (still failing after {attempt} attempts)"
                    )
                return failures
            self._sleep(self.backoff(attempt))
            pending = retry
        return failures
