from __future__ import annotations

from datetime import UTC, datetime

from connector.contacts import Contact, PhoneKey
from connector.staging import Staging


def _contact(key: str, name: str, row: int, updated: int | None) -> Contact:
    when = datetime(2024, 1, updated, tzinfo=UTC) if updated else None
    return Contact(
        key, name, "X", "", PhoneKey(key, key[2:], "+1", ""), "a.csv", row, f"id{row}", when
    )


def test_one_contact_per_number_the_newest_else_the_first() -> None:
    rows = [
        _contact("+14152010001", "old", 2, 1),
        _contact("+14152010002", "first", 3, None),
        _contact("+14152010001", "new", 4, 5),
        _contact("+14152010002", "second", 5, None),
        _contact("+14152010001", "undated", 6, None),
        _contact("+14152010003", "tie-a", 7, 3),
        _contact("+14152010003", "tie-b", 8, 3),
    ]
    with Staging() as staging:
        for row in rows:
            staging.add(row)
        winners = [c for chunk in staging.winners(2) for _, c, _ in chunk]
        losers = [(c.first_name, source, row) for _, c, source, row, _ in staging.duplicates()]
    assert [c.first_name for c in winners] == ["first", "new", "tie-a"]
    assert winners[1].phone == PhoneKey("+14152010001", "4152010001", "+1", "")
    assert losers == [
        ("old", "a.csv", 4),
        ("second", "a.csv", 3),
        ("undated", "a.csv", 4),
        ("tie-b", "a.csv", 7),
    ]


def test_many_rows_are_flushed_in_batches() -> None:
    with Staging() as staging:
        for i in range(12_345):
            staging.add(_contact(f"+1415201{i % 10_000:04d}", "n", i, None))
        assert sum(len(chunk) for chunk in staging.winners(1000)) == 10_000
        assert sum(1 for _ in staging.duplicates()) == 2_345
