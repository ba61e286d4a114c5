"""Reading a file's change times (``updated_at``) in whatever form its CRM wrote them.

Which row of a number is sent is decided by these times (``staging.py``: the newest, a row
without a time counting as the oldest), so a time read wrong sends the wrong name. Exports write
ISO-8601 (Salesforce ``2024-01-23T02:21:49.000+0000``, HubSpot, Dynamics, SQL sources), US
month-first dates (Zoho ``02/03/2025 10:00 AM``), day-first dates, dotted in German, Italian and
Swiss exports (``03.02.2025 11:00``), named months (``3 Feb 2025``, ``Feb 3, 2025 10:00 AM``),
offsets (``+0000``, ``+01:00``, ``Z``) and, where a spreadsheet kept the cell as a number, Excel
serial dates (``45691.5``).

``02/03/2025`` alone cannot say whether it is 2 March or 3 February; a file can, because one
system wrote it in one order: ``28/02/2025`` is only possible day-first. So the order is learnt
once per file from a sample of its values (``TimestampReading.learn``: the first
``SAMPLE_VALUES`` non-empty ones) and every value is read in it by python-dateutil's parser.
``updated_at_format:`` in a mapping (a strptime format) replaces the learning.

A mapping reads every row and dateutil costs some 40 µs a value, so each value is tried cheapest
first: ISO-8601 (``datetime.fromisoformat``, a tenth of a µs), a bare number, the strptime
formats learnt for the sample's commonest shapes of value (derived from dateutil's reading and
kept only when strptime reads the sample exactly as dateutil does: pandas'
``guess_datetime_format`` does the same), and dateutil last. Values no reading makes a time of
are counted and told (``UnreadTimes``), never dropped without a word.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import islice
from typing import Any

from connector.mapping.headers import shown

SAMPLE_VALUES = 10_000
"""How many non-empty values of a unit's ``updated_at`` the day order and formats are learnt
from: enough for a day above 12 to turn up in any real export, cheap to hold."""
_FORMATS = 3
"""Shapes of value (with or without seconds, AM/PM…) a strptime format is learnt for."""
_CHECKED = 20
"""Sampled values of a shape a learnt format must read exactly as dateutil does."""
_LONGEST = 100
"""No time is written longer (``Monday, February 3, 2025 at 11:00:00 AM Central European
Standard Time`` is 70 characters); a longer value is no time, and is never handed to dateutil,
whose cost grows with the text (a hostile cell must not cost seconds)."""

_NUMERIC_DATE = re.compile(r"\s*(\d{1,2})([./-])(\d{1,2})\2\d")
_YEAR_FIRST = re.compile(r"\s*\d{4}\D")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_OFFSET = re.compile(r"(\s*)(?:Z|[+-]\d\d:?\d\d)$")
_PIECES = re.compile(r"(\d+|[^\W\d_]+)")
_DIGITS = re.compile(r"\d+")
_WORDS = re.compile(r"[^\W\d_]+")

_DAYS_ONLY = range(13, 32)
"""Numbers that in a date can only be a day."""
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)
_EXCEL_DAYS = (25_569, 73_051)
"""Excel serial dates read as such: 1970-01-01 up to 2100. A number outside is not a change
time of a CRM record (an id that strayed into the column)."""
_UNIX_SECONDS = (1_000_000_000, 4_102_444_800)
"""Unix times (2001-09-09 up to 2100), in seconds or, times 1,000, in milliseconds, as HubSpot's
API and JSON exports write them; the ranges do not meet the Excel range."""
_FILLED_IN = datetime(2000, 1, 1)
"""What dateutil takes for the parts a value leaves out (``Feb 2025``): fixed, not today, so
the same value is always the same time."""


@dataclass(frozen=True)
class TimestampReading:
    """How one unit's ``updated_at`` values are read: in day-first or month-first order, by the
    strptime formats learnt for its commonest shapes, or by the mapping's ``fixed`` format."""

    dayfirst: bool = False
    formats: tuple[str, ...] = ()
    fixed: str | None = None

    @classmethod
    def learn(cls, values: Iterable[str], *, fixed: str | None = None) -> TimestampReading:
        """The reading the first ``SAMPLE_VALUES`` non-empty values call for (none are read
        with a ``fixed`` format)."""
        if fixed:
            return cls(fixed=fixed)
        texts = islice((v.strip() for v in values if v.strip()), SAMPLE_VALUES)
        others = [
            v for v in texts if len(v) <= _LONGEST and _iso(v) is None and not _NUMBER.fullmatch(v)
        ]
        dayfirst = _day_first(others)
        return cls(dayfirst, _formats(others, dayfirst))

    def read(self, text: str) -> datetime | None:
        """The time a value stands for, in UTC when it names no zone; None when it is none."""
        parsed = _iso(text)
        if parsed is None:
            parsed = self._read_other(text)
        if parsed is None or parsed.tzinfo:
            return parsed
        return parsed.replace(tzinfo=UTC)

    def _read_other(self, text: str) -> datetime | None:
        if len(text) > _LONGEST:
            return None
        if self.fixed:
            return _strptime(text, self.fixed)
        if _NUMBER.fullmatch(text):
            return _from_number(text)
        for form in self.formats:
            parsed = _strptime(text, form)
            if parsed is not None:
                return parsed
        return _dateutil(text, self.dayfirst)


@dataclass
class UnreadTimes:
    """The values of a unit's ``updated_at`` no reading made a time of: counted, the first kept
    as an example, told once the rows are mapped. Their rows count as the oldest of a number."""

    count: int = 0
    columns: list[str] = field(default_factory=list)
    source: str = ""
    example: str = ""

    def note(self, source: str, column: str, value: str) -> None:
        self.count += 1
        if not self.example:
            self.source, self.example = source, value
        if column not in self.columns:
            self.columns.append(column)

    def warnings(self) -> list[str]:
        if not self.count:
            return []
        values = "1 value" if self.count == 1 else f"{self.count:,} values"
        columns = " or ".join(shown(c) for c in self.columns)
        return [
            f"{self.source}: {values} of {columns} could not be read as a time "
            f"(e.g. '{shown(self.example)}'); those rows count as the oldest"
        ]


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _strptime(text: str, form: str) -> datetime | None:
    try:
        return datetime.strptime(text, form)
    except ValueError:
        return None


def _from_number(text: str) -> datetime | None:
    """A bare number as an Excel serial date (days since 1899-12-30, Excel's 1900 date system
    as openpyxl and pandas read it) or a Unix time; None outside the plausible ranges."""
    number = float(text.replace(",", "."))
    low, high = _UNIX_SECONDS
    if _EXCEL_DAYS[0] <= number < _EXCEL_DAYS[1]:
        return _EXCEL_EPOCH + timedelta(days=number)
    if low <= number < high:
        return datetime.fromtimestamp(number, UTC)
    if low * 1000 <= number < high * 1000:
        return datetime.fromtimestamp(number / 1000, UTC)
    return None


def _dateutil(text: str, dayfirst: bool) -> datetime | None:
    """dateutil's reading in the file's order. A year written first is always followed by the
    month (dateutil would read ``2025/02/03`` day-first as 2 March)."""
    try:
        parsed: datetime = _parser()(
            text,
            default=_FILLED_IN,
            dayfirst=dayfirst and not _YEAR_FIRST.match(text),
            tzinfos=_zone,
        )
    except (ValueError, OverflowError):
        return None
    return parsed


@cache
def _parser() -> Callable[..., Any]:
    """dateutil, loaded when a file first needs it: an ISO-only run never pays for it."""
    from dateutil.parser import parser

    return parser().parse  # type: ignore[no-any-return]


def _zone(_name: str | None, offset: int | None) -> int | None:
    """The zone of a value: its offset (``+01:00``, and 0 for ``Z``, ``UTC``, ``GMT``); a zone
    name dateutil has no offset for (``EST``) is read as UTC, never as the machine's own zone,
    so that a file reads alike everywhere."""
    return offset


def _day_first(values: list[str]) -> bool:
    """Whether the sample's numeric dates are day-first: a first number from 13 to 31 can only
    be a day, and so can a second one written month-first; the commoner wins. Without either,
    dotted dates are day-first (no CRM writes month-first with dots) and the rest month-first,
    as US exports (Zoho) write them."""
    day = month = dotted = 0
    for value in values:
        found = _NUMERIC_DATE.match(value)
        if found:
            first, second = int(found[1]), int(found[3])
            day += first in _DAYS_ONLY and second <= 12
            month += second in _DAYS_ONLY and first <= 12
            dotted += found[2] == "."
    if day != month:
        return day > month
    return dotted > 0


def _formats(values: list[str], dayfirst: bool) -> tuple[str, ...]:
    """strptime formats for the sample's commonest shapes, each checked against dateutil."""
    shapes: dict[str, list[str]] = {}
    for value in values:
        shapes.setdefault(_shape(value), []).append(value)
    common = sorted(shapes.values(), key=len, reverse=True)[:_FORMATS]
    found = (_checked_format(group[:_CHECKED], dayfirst) for group in common)
    return tuple(dict.fromkeys(f for f in found if f))


def _shape(value: str) -> str:
    """A value with its words and numbers blurred, a year (3+ digits) told from the rest."""
    return _WORDS.sub("a", _DIGITS.sub(lambda m: "0" if len(m[0]) <= 2 else "000", value))


def _checked_format(values: list[str], dayfirst: bool) -> str | None:
    """The format of ``values[0]``, if strptime reads every one of ``values`` as dateutil does."""
    form = _format_of(values[0], dayfirst and not _YEAR_FIRST.match(values[0]))
    if form is None:
        return None
    for value in values:
        ours, theirs = _strptime(value, form), _dateutil(value, dayfirst)
        if ours is None or theirs is None or _utc(ours) != _utc(theirs):
            return None
    return form


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _format_of(value: str, dayfirst: bool) -> str | None:
    """The strptime format a value is written in, told from its pieces: a 4-digit number is the
    year, numbers beside ``:`` the clock, digits after the seconds their fraction, the other
    numbers day and month in the file's order, words month and day names, AM/PM or literal."""
    offset = _OFFSET.search(value)
    pieces = _PIECES.split(value[: offset.start()] if offset else value)
    words = {p.casefold() for p in pieces[1::2] if not p.isdigit()}
    named_month = bool(words & _month_names())
    dates = iter(["%d"] if named_month else ["%d", "%m"] if dayfirst else ["%m", "%d"])
    clock = iter(["%I" if words & {"am", "pm"} else "%H", "%M", "%S"])
    form: list[str] = []
    last = ""
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            form.append(piece.replace("%", "%%"))
            continue
        part = _directive(piece, pieces[i - 1], pieces[i + 1], last, dates, clock)
        if part is None:
            return None
        form.append(part)
        last = part
    return "".join(form) + (offset[1] + "%z" if offset else "")


def _directive(
    piece: str,
    before: str,
    after: str,
    last: str,
    dates: Iterator[str],
    clock: Iterator[str],
) -> str | None:
    if not piece.isdigit():
        return _word(piece)
    if last == "%S" and before in (".", ","):
        return "%f"
    if before == ":" or after.startswith(":"):
        return next(clock, None)
    if len(piece) == 4:
        return "%Y"
    return next(dates, None)


def _word(word: str) -> str:
    folded = word.casefold()
    if folded in ("am", "pm"):
        return "%p"
    for directive, names in _names().items():
        if folded in names:
            return directive
    return word.replace("%", "%%")


@cache
def _names() -> dict[str, frozenset[str]]:
    """Month and day names as strptime reads them (the process's locale, as strptime's own)."""
    return {
        "%B": frozenset(n.casefold() for n in calendar.month_name[1:]),
        "%b": frozenset(n.casefold() for n in calendar.month_abbr[1:]),
        "%A": frozenset(n.casefold() for n in calendar.day_name),
        "%a": frozenset(n.casefold() for n in calendar.day_abbr),
    }


def _month_names() -> frozenset[str]:
    names = _names()
    return names["%B"] | names["%b"]
