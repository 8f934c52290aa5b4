"""Cron schedules: validation and the next fire time, on croniter.

A schedule is a standard 5-field cron expression (minute hour day-of-month month
day-of-week), evaluated in an IANA time zone (None: UTC). With the environment variable
``GRAPHDOCK_CRON_SECONDS=1`` (tests only) a 6th field, the seconds, is accepted too, so
that a test can schedule a cron that fires within seconds through the same code path.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from graphdock.errors import Unprocessable


def _seconds_allowed() -> bool:
    return os.environ.get("GRAPHDOCK_CRON_SECONDS", "") == "1"


def check_schedule(schedule: str) -> str:
    """The schedule, stripped; 422 ``Invalid cron schedule: '<s>'`` when it is not a
    valid 5-field cron expression."""
    text = (schedule or "").strip()
    fields = text.split()
    allowed = (5, 6) if _seconds_allowed() else (5,)
    if len(fields) not in allowed or not croniter.is_valid(text):
        raise Unprocessable(
            f"Invalid cron schedule: '{schedule}'. Expected 5 fields: minute hour day-of-month month day-of-week"
        )
    try:  # valid fields can still name a date that never comes (February 31st)
        croniter(text, datetime.now(timezone.utc)).get_next(datetime)
    except CroniterBadDateError:
        raise Unprocessable(f"Invalid cron schedule: '{schedule}' never fires") from None
    return text


def check_timezone(name: str | None) -> str | None:
    """The IANA time zone name (None stays None: UTC); 422 naming it when unknown."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise Unprocessable(f"Invalid timezone: '{name}' is not an IANA time zone name") from None
    return name


def next_run(schedule: str, tz: str | None, after: datetime, end_time: datetime | None = None) -> datetime | None:
    """The first time strictly after ``after`` that ``schedule`` matches in ``tz`` (UTC
    when None), as an aware UTC datetime; None when it falls after ``end_time``."""
    zone = ZoneInfo(tz) if tz else timezone.utc
    base = after.astimezone(zone)
    # a 6th field (tests only, see the module docstring) is croniter's trailing seconds field
    result = croniter(schedule, base).get_next(datetime).astimezone(timezone.utc)
    if end_time is not None and result > end_time:
        return None
    return result
