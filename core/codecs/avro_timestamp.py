"""Avro ``timestamp-micros`` longs for the hand-written codecs, memoised by the second.

A present-day instant is a zig-zag varint of 8 bytes. Its top five bytes
change about once a second, so they are memoised both ways (bounded, cleared
when full): writing costs the three low bytes from tables, reading one memo
lookup and three table steps. Anything else (before 1978, far future, a
malformed varint) takes the general path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from polybus.core.codecs.avro_wire import read_long, zigzag
from polybus.core.codecs.wire import LOW14, remember

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

# The top five bytes of an 8-byte timestamp varint change about once a second:
# memoised both ways (bounded), so a timestamp costs the three low bytes.
_HIGH_BYTES: dict[int, bytes] = {}  # (zigzag >> 21) -> its five varint bytes
HIGH_TIMES: dict[bytes, datetime] = {}  # those five bytes -> the instant they stand for


def write_timestamp(value: datetime) -> bytes:
    """timestamp-micros as an Avro long; today's instants take 8 bytes, the top five memoised."""
    n = (value - EPOCH) // _MICRO
    n = (n << 1) ^ (n >> 63)
    if 1 << 49 <= n < 1 << 56:
        high = _HIGH_BYTES.get(n >> 21)
        if high is None:
            high = _high_bytes(n >> 21)
        return LOW14[n & 16383] + _BYTE3[n >> 14 & 127] + high
    return zigzag((n >> 1) ^ -(n & 1))


# The third varint byte of each 7-bit value, with its continuation bit (the two below it come
# from polybus.core.codecs.wire.LOW14).
_BYTE3 = [bytes((n | 128,)) for n in range(128)]


def _high_bytes(top: int) -> bytes:
    high = bytes(
        (
            (top & 127) | 128,
            (top >> 7 & 127) | 128,
            (top >> 14 & 127) | 128,
            (top >> 21 & 127) | 128,
            top >> 28,
        )
    )
    return remember(_HIGH_BYTES, top, high)


# What each of the three low varint bytes adds to the memoised base, by its 7 bits.
STEP0 = [timedelta(0, 0, n >> 1) for n in range(128)]
STEP1 = [timedelta(0, 0, n << 6) for n in range(128)]
STEP2 = [timedelta(0, 0, n << 13) for n in range(128)]


def read_time(buf: bytes, pos: int) -> tuple[datetime, int]:
    """A timestamp-micros long as a UTC datetime; today's (8 bytes) from the memoised top five."""
    base = HIGH_TIMES.get(buf[pos + 3 : pos + 8])
    b0, b1, b2 = buf[pos], buf[pos + 1], buf[pos + 2]
    # three bytes with their continuation bit, the first even (zigzag of a positive count):
    # their low 7 bits are micros past the base, 2 x (bits 0-5), bits 6-12, bits 13-19
    if base is not None and b0 & b1 & b2 & 128 and not b0 & 1:
        return base + STEP0[b0 & 127] + STEP1[b1 & 127] + STEP2[b2 & 127], pos + 8
    micros, end = _read_timestamp(buf, pos)
    if end == pos + 8 and micros >= 0:
        _remember_high(buf[pos + 3 : pos + 8])
    return EPOCH + timedelta(0, 0, micros), end


def _remember_high(high: bytes) -> None:
    top = int.from_bytes(high, "little")
    top = (
        (top & 127)
        | (top >> 1 & 0x3F80)
        | (top >> 2 & 0x1FC000)
        | (top >> 3 & 0xFE00000)
        | (top >> 4 & 0x7F0000000)
    )
    remember(HIGH_TIMES, high, EPOCH + timedelta(0, 0, top << 20))


def _read_timestamp(buf: bytes, pos: int) -> tuple[int, int]:
    """An Avro long; today's timestamp-micros (8 bytes) in one step."""
    raw = int.from_bytes(buf[pos : pos + 8], "little")
    if raw & 0x8080808080808080 != 0x0080808080808080:
        return read_long(buf, pos)
    n = (
        (raw & 127)
        | (raw >> 1 & 0x3F80)
        | (raw >> 2 & 0x1FC000)
        | (raw >> 3 & 0xFE00000)
        | (raw >> 4 & 0x7F0000000)
        | (raw >> 5 & 0x3F800000000)
        | (raw >> 6 & 0x1FC0000000000)
        | (raw >> 7 & 0xFE000000000000)
    )
    return (n >> 1) ^ -(n & 1), pos + 8
