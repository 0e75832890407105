"""Poison messages: what cannot be decoded is dead-lettered alone, and read back as a stand-in.

Every adapter decodes each received message on its own; a failure (a bad
attribute, deep nesting, invalid UTF-8, an SDK deserialisation error) moves
that one message to the dead-letter target with its reason and raw bytes, and
never blocks the rest of its batch. Reading dead letters never raises: a dead
letter that is no CloudEvent comes back as a stand-in event of type
`UNDECODABLE_TYPE` whose data is the raw bytes and whose `REASON_EXTENSION`
extension says why.
"""

from __future__ import annotations

from cloudevents.core.v1.event import CloudEvent

UNDECODABLE_TYPE = "polybus.undecodable"
REASON_EXTENSION = "polybusreason"
REASON_LIMIT = 2000  # characters of the reason kept in the extension

# What decoding untrusted bytes may raise besides polybus's own ValidationError
# family (a ValueError): deep nesting, bad types, bad encodings.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    RecursionError,
    UnicodeError,
    OverflowError,
)


def undecodable_event(event_id: str, source: str, raw: bytes, reason: str) -> CloudEvent:
    """The stand-in for a message that is no CloudEvent: its raw bytes, named by `event_id`."""
    return CloudEvent(
        {
            "id": event_id or "unknown",
            "source": source,
            "type": UNDECODABLE_TYPE,
            "datacontenttype": "application/octet-stream",
            REASON_EXTENSION: reason[:REASON_LIMIT] or "undecodable",
        },
        raw,
    )
