"""Report periods: an ISO week (`2026-W47`, Monday 00:00 UTC to the next Monday) or a calendar month
(`2026-11`, the 1st 00:00 UTC to the next 1st). Half-open, so consecutive periods never count an item twice."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from mpki.domain import InvalidRequest

_WEEK = re.compile(r"(\d{4})-W(\d{2})")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC, with the label it was parsed from."""

    label: str
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def parse(cls, text: str) -> Period:
        value = text.strip()
        if match := _WEEK.fullmatch(value):
            year, week = int(match[1]), int(match[2])
            try:
                monday = dt.date.fromisocalendar(year, week, 1)
            except ValueError:
                raise InvalidRequest(f"{text!r} is not an ISO week: {year} has no week {week}") from None
            start = dt.datetime.combine(monday, dt.time(), dt.UTC)
            return cls(value, start, start + dt.timedelta(days=7))
        if match := _MONTH.fullmatch(value):
            year, month = int(match[1]), int(match[2])
            if not 1 <= month <= 12 or year < 1:
                raise InvalidRequest(f"{text!r} is not a month: use YYYY-MM with a month from 01 to 12")
            start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
            after = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
            return cls(value, start, after)
        raise InvalidRequest(f"{text!r} is not a report period: use an ISO week like 2026-W47 or a month like 2026-11")

    @property
    def days(self) -> list[dt.date]:
        first = self.start.date()
        return [first + dt.timedelta(days=index) for index in range((self.end - self.start).days)]

    @property
    def kind(self) -> str:
        """ "week" or "month": how the schedule and the archive name the period's length."""
        return "week" if "-W" in self.label else "month"

    @classmethod
    def last_complete_week(cls, now: dt.datetime) -> Period:
        """The ISO week that ended most recently at or before `now` (UTC): on a Monday at 00:00 exactly, the
        week that has just ended."""
        today = now.astimezone(dt.UTC).date()
        this_monday = today - dt.timedelta(days=today.weekday())
        year, week, _ = (this_monday - dt.timedelta(days=7)).isocalendar()
        return cls.parse(f"{year}-W{week:02d}")

    @classmethod
    def last_complete_month(cls, now: dt.datetime) -> Period:
        """The calendar month that ended most recently at or before `now` (UTC)."""
        moment = now.astimezone(dt.UTC)
        year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
        return cls.parse(f"{year}-{month:02d}")
