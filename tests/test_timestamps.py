"""Change times in every form an export writes them (issue [9]): the newest row of a number wins,
so ``03.02.2025 11:00`` dropped without a word, or ``02/03/2025`` read as 3 February in a
day-first file, sends the wrong name."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from connector.contacts import Contact
from connector.mapping import load_mapping
from connector.mapping.apply import BoundMapping, sample_updated_at
from connector.mapping.timestamps import SAMPLE_VALUES, TimestampReading
from connector.sources import SourceRow

CASES = Path(__file__).resolve().parent / "cases"
HEADER = ["First Name", "Last Name", "Mobile Phone", "Country", "Last Modified Date"]


def _bound(tmp_path: Path, **extra: object) -> BoundMapping:
    spec = {
        "updated_at": "Last Modified Date",
        "fields": {"firstName": "First Name", "lastName": "Last Name"},
        "phone": {"from": "Mobile Phone", "region_from": "Country"},
        **extra,
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return load_mapping(str(path)).bind(HEADER, "x.csv")


def _times(bound: BoundMapping, stamps: list[str]) -> list[datetime | None]:
    """Each stamp on a row of its own, read as a run reads a unit: learnt first, then mapped."""
    rows = [
        SourceRow(["Ada", "King", "+1 415 555 0132", "US", s], i + 2) for i, s in enumerate(stamps)
    ]
    learnt = bound.learn_timestamps(sample_updated_at(bound, rows))
    contacts = [
        learnt.apply(r.values, source="x.csv", row=r.line, default_region="US") for r in rows
    ]
    assert all(isinstance(c, Contact) for c in contacts)
    return [c.updated_at for c in contacts if isinstance(c, Contact)]


def test_dotted_day_first_dates_make_the_newer_row_the_newer() -> None:
    """``dotted_dates.csv``, an Italian export: Luca's second row (3 February) is newer than his
    first (15 January), and Sofia's is read at all."""
    with (CASES / "dotted_dates.csv").open(encoding="utf-8", newline="") as handle:
        header, *cells = list(csv.reader(handle))
    bound = load_mapping("generic").bind(header, "dotted_dates.csv")
    rows = [SourceRow(values, line) for line, values in enumerate(cells, start=2)]
    learnt = bound.learn_timestamps(sample_updated_at(bound, rows))
    mapped = [learnt.apply(r.values, source="d.csv", row=r.line, default_region="US") for r in rows]
    assert [(c.key, c.last_name, c.updated_at) for c in mapped if isinstance(c, Contact)] == [
        ("+3903123456789", "Bianchi", datetime(2025, 1, 15, 10, 0, tzinfo=UTC)),
        ("+3903123456789", "Bianchi-Rossi", datetime(2025, 2, 3, 11, 0, tzinfo=UTC)),
        ("+3903312345678", "Marino", datetime(2025, 2, 28, 8, 30, tzinfo=UTC)),
    ]
    assert learnt.timestamp_warnings() == []


def test_one_day_above_twelve_turns_the_whole_file_day_first(tmp_path: Path) -> None:
    bound = _bound(tmp_path)
    assert _times(bound, ["02/03/2025 10:00", "28/02/2025 09:00"]) == [
        datetime(2025, 3, 2, 10, 0, tzinfo=UTC),
        datetime(2025, 2, 28, 9, 0, tzinfo=UTC),
    ]
    assert _times(bound, ["02/03/2025 10:00 AM", "12/31/2024 09:15 PM"]) == [
        datetime(2025, 2, 3, 10, 0, tzinfo=UTC),  # without a day above 12: US, month first
        datetime(2024, 12, 31, 21, 15, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("stamp", "when"),
    [
        ("2024-01-23T02:21:49.000+0000", datetime(2024, 1, 23, 2, 21, 49, tzinfo=UTC)),
        ("2025-02-03T11:00:00Z", datetime(2025, 2, 3, 11, 0, tzinfo=UTC)),
        ("2025-02-03 12:00:00 +01:00", datetime(2025, 2, 3, 11, 0, tzinfo=UTC)),
        ("2025-02-03 11:00 UTC", datetime(2025, 2, 3, 11, 0, tzinfo=UTC)),
        ("Mon, 03 Feb 2025 12:00:00 +0100", datetime(2025, 2, 3, 11, 0, tzinfo=UTC)),
        ("03.02.2025 11:00", datetime(2025, 2, 3, 11, 0, tzinfo=UTC)),
        ("3 Feb 2025", datetime(2025, 2, 3, tzinfo=UTC)),
        ("Feb 3, 2025 10:00 AM", datetime(2025, 2, 3, 10, 0, tzinfo=UTC)),
        ("February 3, 2025 1:05 PM", datetime(2025, 2, 3, 13, 5, tzinfo=UTC)),
        ("45691.5", datetime(2025, 2, 3, 12, 0, tzinfo=UTC)),  # Excel: days since 1899-12-30
        ("1738580400000", datetime(2025, 2, 3, 11, 0, tzinfo=UTC)),  # Unix milliseconds
        ("2025/02/03", datetime(2025, 2, 3, tzinfo=UTC)),  # year first: month next
    ],
)
def test_every_common_form_is_read(tmp_path: Path, stamp: str, when: datetime) -> None:
    assert _times(_bound(tmp_path), [stamp, "28.02.2025 08:30"])[0] == when


def test_an_offset_is_kept() -> None:
    reading = TimestampReading.learn(["03.02.2025 11:00 +01:00"])
    assert reading.read("03.02.2025 11:00 +01:00") == datetime(
        2025, 2, 3, 11, 0, tzinfo=timezone(timedelta(hours=1))
    )


def test_values_that_are_no_time_are_counted_named_and_the_oldest(tmp_path: Path) -> None:
    bound = _bound(tmp_path)
    stamps = ["yesterday", "12", "03.02.2025 11:00", "yester\x1bday", "1." * 60]
    assert _times(bound, stamps) == [None, None, datetime(2025, 2, 3, 11, tzinfo=UTC), None, None]
    rows = [SourceRow(["Ada", "King", "+1 415 555 0132", "US", s], 2) for s in stamps]
    learnt = bound.learn_timestamps(sample_updated_at(bound, rows))
    assert learnt.timestamp_warnings() == []
    for row in rows:
        learnt.apply(row.values, source="exports/x.csv", row=row.line, default_region="US")
    assert learnt.timestamp_warnings() == [
        "exports/x.csv: 4 values of Last Modified Date could not be read as a time "
        "(e.g. 'yesterday'); those rows count as the oldest"
    ]
    bound.unread_times.note("x.csv", "Last Modified Date", "yester\x1bday")
    assert "(e.g. 'yester\\x1bday')" in bound.timestamp_warnings()[0]


def test_updated_at_format_replaces_inference(tmp_path: Path) -> None:
    bound = _bound(tmp_path, updated_at_format="%d/%m/%Y %H.%M")
    assert sample_updated_at(bound, _endless()) == []
    row = ["Ada", "King", "+1 415 555 0132", "US", "02/03/2025 10.30"]
    for mapping in (bound, bound.learn_timestamps([])):
        contact = mapping.apply(row, source="x.csv", row=2, default_region="US")
        assert isinstance(contact, Contact)
        assert contact.updated_at == datetime(2025, 3, 2, 10, 30, tzinfo=UTC)


def test_the_sample_is_the_first_values_and_nothing_is_read_without_the_column(
    tmp_path: Path,
) -> None:
    bound = _bound(tmp_path)
    sample = sample_updated_at(bound, _endless())
    assert len(sample) == SAMPLE_VALUES
    assert sample[:2] == ["01.02.2025 10:00", "02.02.2025 10:00"]
    other = load_mapping("generic").bind(["First Name", "Mobile Phone"], "x.csv")
    assert sample_updated_at(other, _endless()) == []


def test_a_learnt_format_reads_as_dateutil_does() -> None:
    """The formats learnt for speed give dateutil's answer: one per common shape, none for a
    two-digit year (strptime and dateutil disagree on its century)."""
    reading = TimestampReading.learn(["28.02.2025 08:30", "03.02.2025 11:00", "03.02.25 11:00"])
    assert reading.dayfirst
    assert reading.formats == ("%d.%m.%Y %H:%M",)
    assert reading.read("03.02.25 11:00") == datetime(2025, 2, 3, 11, 0, tzinfo=UTC)


def _endless() -> Iterator[SourceRow]:
    day = 0
    while True:
        day += 1
        stamp = f"{1 + (day - 1) % 28:02d}.02.2025 10:00"
        yield SourceRow(["Ada", "King", "+1 415 555 0132", "US", stamp], day + 1)
