"""What every hand-written codec shares: unsigned base-128 varints and bounded memos.

Avro (zig-zag longs, `polybus.core.codecs.avro_wire`) and Protobuf
(`polybus.core.codecs.protobuf_wire`) both write integers as base-128 varints, low 7
bits first. The codecs memoise what repeats from event to event (encoded
names, timestamp seconds, header bytes) in plain dicts bounded by `remember`:
a memo that reaches its limit is emptied and refills with what is current.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

MEMO_LIMIT = 4096  # entries per memo; a memo is emptied when it reaches this

# The two low bytes of a longer varint: each 14-bit value with both continuation bits set
# (16,384 two-byte strings, ~0.6 MB), so a value's low bits take one list index.
LOW14 = [bytes(((n & 127) | 128, (n >> 7) | 128)) for n in range(16384)]


def remember(memo: dict[K, V], key: K, value: V, limit: int = MEMO_LIMIT) -> V:
    """Store `value` under `key`, emptying the memo first when it holds `limit` entries."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(the unsigned varint at `pos`, the position after it)."""
    byte = buf[pos]
    pos += 1
    n = byte & 0x7F
    shift = 7
    while byte & 0x80:
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if shift > 70:
            raise ValueError("varint longer than 10 bytes")
    return n, pos
