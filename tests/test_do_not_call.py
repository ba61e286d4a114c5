"""Do-not-call belongs to the number, not the row (issue [5], item 1): the real command line
against the sandbox, export after export."""

from __future__ import annotations

import csv
from pathlib import Path

from connector.kore.sandbox import Sandbox
from tests.conftest import run_cli, tenant_config, write_config
from tests.helpers import rejected, runs, summary

HEADER = ["Id", "FirstName", "LastName", "MobilePhone", "Phone", "DoNotCall", "LastModifiedDate"]


def _export(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def test_a_flagged_number_is_sent_from_no_row_and_stays_flagged_until_an_export_lifts_it(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    _export(
        exports / "1.csv",
        [
            ["1", "Ann", "Old", "+1 415 201 0601", "", "false", "2024-01-01T00:00:00Z"],
            ["2", "Ann", "New", "+1 415 201 0601", "", "true", "2024-03-01T00:00:00Z"],
            ["3", "Bo", "Lee", "+1 415 201 0602", "", "false", "2024-01-01T00:00:00Z"],
            ["4", "Cy", "Two", "+1 415 201 0603", "+1 415 201 0604", "true", ""],
            ["5", "Di", "Shared", "", "+1 415 201 0604", "", ""],
        ],
    )
    config = write_config(tmp_path, {"t": tenant_config(sandbox, exports / "*.csv")})

    first = run_cli("sync", config=config)

    assert first.returncode == 0, first.stderr
    held = {c["cellPhone"]["phoneNumber"] for c in sandbox.state.active()}
    assert held == {"+14152010602"}, "no row sends a number some row flagged"
    reasons = {r["record_id"]: (r["reason"], r["detail"]) for r in rejected(runs(tmp_path, "t")[0])}
    assert reasons["1"] == ("skip_when", "the number is flagged do-not-call by 1.csv row 3")
    assert reasons["5"] == ("skip_when", "the number is flagged do-not-call by 1.csv row 5")
    assert {k: v[0] for k, v in reasons.items()} == {
        "1": "skip_when",
        "2": "skip_when",
        "4": "skip_when",
        "5": "skip_when",
    }

    _export(
        exports / "2.csv",
        [["6", "Ann", "Again", "+1 415 201 0601", ""], ["7", "Eve", "New", "+1 415 201 0605", ""]],
        header=HEADER[:5],
    )
    second = run_cli("sync", config=config)

    assert second.returncode == 0, second.stderr
    held = {c["cellPhone"]["phoneNumber"] for c in sandbox.state.active()}
    assert held == {"+14152010602", "+14152010605"}, "an export without the column lifts nothing"
    (kept,) = rejected(runs(tmp_path, "t")[1])
    assert (kept["record_id"], kept["reason"]) == ("6", "skip_when")

    _export(
        exports / "3.csv",
        [
            ["8", "Ann", "Free", "+1 415 201 0601", "", "false", ""],
            ["9", "Bo", "Lee", "+1 415 201 0602", "", "true", ""],
        ],
    )
    third = run_cli("sync", config=config)

    assert third.returncode == 0, third.stderr
    held = {c["cellPhone"]["phoneNumber"] for c in sandbox.state.active()}
    assert "+14152010601" in held, "an export that shows the number unflagged lifts the flag"
    last = runs(tmp_path, "t")[2]
    assert summary(last)["counters"]["dnc_in_kore"] == 1
    with (last / "dnc_in_kore.csv").open(encoding="utf-8", newline="") as handle:
        assert [row["phone_key"] for row in csv.DictReader(handle)] == ["+14152010602"]


def test_a_dry_run_judges_do_not_call_the_same_way_and_remembers_nothing(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "1.csv"
    _export(
        export,
        [
            ["1", "Ann", "Old", "+1 415 201 0701", "", "false", "2024-01-01T00:00:00Z"],
            ["2", "Ann", "New", "+1 415 201 0701", "", "yes", "2024-03-01T00:00:00Z"],
        ],
    )
    config = write_config(tmp_path, {"t": tenant_config(sandbox, export)})

    dry = run_cli("sync", "--dry-run", config=config)

    assert dry.returncode == 0, dry.stderr
    assert summary(runs(tmp_path, "t")[0])["counters"]["would_send"] == 0
    export.write_text(",".join(HEADER) + "\n3,Ann,Free,+1 415 201 0701,,false,\n")
    assert run_cli("sync", config=config).returncode == 0
    assert len(sandbox.state.active()) == 1, "the dry run left no flag behind"


def test_the_row_a_number_was_delivered_from_lifts_its_flag_when_it_comes_back(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Unchanged rows are not mapped again, except the row of a number flagged since: it is the
    row that says the number may be called again, and a tenant that now deletes flagged numbers
    must not delete it."""
    exports = tmp_path / "exports"
    row = ["1", "Ann", "Lee", "+1 415 201 0801", "", "false", "2024-01-01T00:00:00Z"]
    _export(exports / "1.csv", [row])
    tenant = tenant_config(sandbox, exports / "*.csv")
    config = write_config(tmp_path, {"t": tenant})
    assert run_cli("sync", config=config).returncode == 0
    _export(exports / "2.csv", [[*row[:5], "true", row[6]]])
    assert run_cli("sync", config=config).returncode == 0  # kept in Kore: do_not_call: keep
    tenant["changes"] = {"do_not_call": "delete"}
    config = write_config(tmp_path, {"t": tenant})
    (exports / "1.csv").unlink()
    (exports / "2.csv").unlink()
    _export(exports / "3.csv", [row, ["2", "Bo", "Lee", "+1 415 201 0802", "", "false", ""]])

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert "+14152010801" in {c["cellPhone"]["phoneNumber"] for c in sandbox.state.active()}
    assert summary(runs(tmp_path, "t")[-1])["counters"]["deleted"] == 0
