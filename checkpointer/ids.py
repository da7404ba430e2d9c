"""Times read from checkpoint ids, and ids bounding a time.

LangGraph's checkpoint ids are UUIDv6 strings: the first 15 hex digits (version nibble
aside) are a 60-bit count of 100 ns intervals since 1582-10-15, most significant first,
so comparing two ids as text compares their times. A thread's creation and update
times are the times of its first and latest checkpoint ids: no column or table to keep
in step, and a database the official saver writes has them too. An id that is not a
UUIDv6 (a hand-written one) has no time.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1582, 10, 15, tzinfo=timezone.utc)
_HEX = frozenset("0123456789abcdef")


def id_time(checkpoint_id: str | None) -> datetime | None:
    """When a UUIDv6 checkpoint id was made (UTC), or None if it is not one."""
    if not checkpoint_id or len(checkpoint_id) != 36 or checkpoint_id[14] != "6":
        return None
    digits = checkpoint_id[0:8] + checkpoint_id[9:13] + checkpoint_id[15:18]
    if not set(digits.lower()) <= _HEX:
        return None
    ticks = int(digits, 16)
    return _EPOCH + timedelta(microseconds=ticks // 10)


def id_floor(moment: datetime) -> str:
    """The smallest UUIDv6 string of `moment`: ids made before it compare lower, ids
    made at or after it compare higher or equal. A naive datetime is read as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    ticks = (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10
    if ticks < 0:
        ticks = 0
    digits = f"{min(ticks, (1 << 60) - 1):015x}"
    return f"{digits[0:8]}-{digits[8:12]}-6{digits[12:15]}-0000-000000000000"


__all__ = ["id_floor", "id_time"]
