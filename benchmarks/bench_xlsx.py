"""A workbook export against the same rows as CSV: dry-run time and peak memory of each.

    python benchmarks/bench_xlsx.py [--rows 100000] [--repeat 1]

Writes a generated Salesforce export (``tests/messy.py``) as CSV and as the XLSX workbook Excel
saves when it opens that CSV and saves it again: its text in the shared strings, and the
phones that are digits only stored as numbers in every third row (Excel turns ``4155550100``
into a number). Then, for each, the real command line runs a dry run in a child process with a
fresh state; it prints the seconds, the peak RSS of the run's processes together (sampled as
``bench_sync.py`` samples them) and the workbook's time and peak as multiples of the CSV's.
``--repeat N`` runs each N times, alternately, and shows the fastest (a host others share is
noisy). Which reader reads the workbook (``connector.sources.xlsx_files``: the fast one up to
``FAST_BYTES`` of sheet and shared strings unpacked, the streaming one above) is printed too.

A workbook of 1,000,000 rows is past the default ``source.max_sheet_bytes`` and
``max_strings_bytes``; the configuration raises both (and ``max_shared_strings``) for every
size, so that the bench measures reading, not refusing.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
import zipfile
from itertools import islice
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.kore.sandbox import Sandbox
from connector.settings import XlsxSourceSettings
from connector.sources.xlsx_files import inspect_xlsx
from tests.messy import write_export

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_PARTS = {
    "[Content_Types].xml": (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_TYPE}.sheet.main+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_TYPE}.worksheet+xml"/>'
        f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_TYPE}.sharedStrings+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{_TYPE}.styles+xml"/></Types>'
    ),
    "_rels/.rels": (
        f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1"'
        f' Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC}"><sheets>'
        '<sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<Relationships xmlns="{_RELS}">'
        f'<Relationship Id="rId1" Type="{_DOC}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{_DOC}/styles" Target="styles.xml"/>'
        f'<Relationship Id="rId3" Type="{_DOC}/sharedStrings" Target="sharedStrings.xml"/>'
        "</Relationships>"
    ),
    "xl/styles.xml": (
        f'<styleSheet xmlns="{_MAIN}"><fonts count="1"><font><sz val="11"/>'
        '<name val="Calibri"/></font></fonts><fills count="1"><fill>'
        '<patternFill patternType="none"/></fill></fills><borders count="1"><border/>'
        '</borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0"'
        ' borderId="0"/></cellStyleXfs><cellXfs count="1"><xf numFmtId="0" fontId="0"'
        ' fillId="0" borderId="0" xfId="0"/></cellXfs><cellStyles count="1">'
        '<cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
    ),
}
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_EXCEL_ROWS = 1_048_576


def excel_workbook(export: Path, workbook: Path) -> None:
    """``export`` (a CSV file) as Excel saves it as XLSX: one sheet, ``Contacts``; text in the
    shared strings (with ``xml:space="preserve"`` where it has spaces at an end), empty cells
    left out, and in every third row a phone column of digits only (15 at most, not starting
    with 0, which Excel would drop) as a number."""
    strings: dict[str, int] = {}
    letters = [_letters(n) for n in range(1, 16385)]
    with (
        export.open(encoding="utf-8", newline="") as handle,
        zipfile.ZipFile(workbook, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        reader = csv.reader(handle)
        header = next(reader)
        phones = {i for i, name in enumerate(header) if name.endswith(("Phone", "Fax"))}
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(f'{_DECLARATION}<worksheet xmlns="{_MAIN}"><sheetData>'.encode())
            sheet.write(_row(1, header, set(), letters, strings))
            for number, values in enumerate(reader, start=2):
                numbers = phones if number % 3 == 0 else set()
                sheet.write(_row(number, values, numbers, letters, strings))
            sheet.write(b"</sheetData></worksheet>")
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as part:
            part.write(
                f'{_DECLARATION}<sst xmlns="{_MAIN}" count="{len(strings)}"'
                f' uniqueCount="{len(strings)}">'.encode()
            )
            for text in strings:
                space = ' xml:space="preserve"' if text != text.strip() else ""
                part.write(f"<si><t{space}>{escape(text)}</t></si>".encode())
            part.write(b"</sst>")
        for name, text in _PARTS.items():
            archive.writestr(name, _DECLARATION + text)


def _fit_a_sheet(export: Path) -> int:
    """Cut ``export`` to the rows a sheet holds (1,048,576, the header's included), as Excel
    does when it opens a longer CSV file; the number of its rows below the header."""
    with export.open(encoding="utf-8", newline="") as source:
        count = sum(1 for _ in csv.reader(source))
    if count > _EXCEL_ROWS:
        cut = export.with_suffix(".cut")
        with (
            export.open(encoding="utf-8", newline="") as source,
            cut.open("w", encoding="utf-8", newline="") as target,
        ):
            csv.writer(target).writerows(islice(csv.reader(source), _EXCEL_ROWS))
        cut.replace(export)
    return min(count, _EXCEL_ROWS) - 1


def _row(
    number: int, values: list[str], numbers: set[int], letters: list[str], strings: dict[str, int]
) -> bytes:
    cells = [f'<row r="{number}">']
    for i, value in enumerate(values):
        if value == "":
            continue
        ref = f"{letters[i]}{number}"
        if i in numbers and value.isdigit() and len(value) <= 15 and value[0] != "0":
            cells.append(f'<c r="{ref}"><v>{int(value)}</v></c>')
        else:
            cells.append(f'<c r="{ref}" t="s"><v>{strings.setdefault(value, len(strings))}</v></c>')
    cells.append("</row>")
    return "".join(cells).encode()


def _letters(column: int) -> str:
    text = ""
    while column:
        column, rest = divmod(column - 1, 26)
        text = chr(65 + rest) + text
    return text


def _dry_run(config: Path) -> tuple[float, float, int]:
    """Seconds, peak RSS (MiB, of the run's processes together) and exit code of a dry run."""
    from benchmarks.bench_sync import _run  # its sampling of the run's processes

    return _run([sys.executable, "-m", "connector", "sync", "--dry-run", "--config", str(config)])


def _config(work: Path, sandbox: Sandbox, source: dict[str, str]) -> Path:
    """The benchmark's tenant (``bench_sync``'s), reading ``source``."""
    from benchmarks.bench_sync import _config as config

    return config(work, sandbox, source)


def _reader(workbook: Path, limits: dict[str, str]) -> str:
    """The workbook's unpacked size and the reader that reads it."""
    with zipfile.ZipFile(workbook) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    settings = XlsxSourceSettings.model_validate({"kind": "xlsx", "path": str(workbook), **limits})
    reader = inspect_xlsx(workbook, settings).reader()
    return f"{unpacked / 2**20:,.1f} MiB unpacked, read by the {reader} reader"


def bench(rows: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, Sandbox() as sandbox:
        work = Path(tmp)
        export, workbook = work / "csv" / "contacts.csv", work / "xlsx" / "contacts.xlsx"
        export.parent.mkdir()
        workbook.parent.mkdir()
        write_export(export, valid=rows, seed=1)
        records = _fit_a_sheet(export)
        started = time.perf_counter()
        excel_workbook(export, workbook)
        written = time.perf_counter() - started
        limits = {
            "max_sheet_bytes": "4GiB",
            "max_strings_bytes": "1GiB",
            "max_shared_strings": str(10 * rows + 1000),
        }
        print(
            f"{records:,} rows: CSV {export.stat().st_size / 2**20:.1f} MiB, XLSX"
            f" {workbook.stat().st_size / 2**20:.1f} MiB ({_reader(workbook, limits)}; written in"
            f" {written:.1f} s)"
        )
        runs: dict[str, list[tuple[float, float, int]]] = {"csv": [], "xlsx": []}
        sources = {
            "csv": {"kind": "csv", "path": str(export)},
            "xlsx": {"kind": "xlsx", "path": str(workbook), **limits},
        }
        for attempt in range(repeat):
            for label, source in sources.items():
                run = work / label / f"run{attempt}"
                run.mkdir()
                runs[label].append(_dry_run(_config(run, sandbox, source)))
        best = {label: min(results) for label, results in runs.items()}
        for label, (seconds, peak, code) in best.items():
            every = ", ".join(f"{s:.1f}" for s, _, _ in runs[label])
            print(
                f"  {label:5} dry run {seconds:8.2f} s  peak RSS {peak:7.1f} MiB"
                + (f"  (of {every} s)" if repeat > 1 else "")
                + (f"  EXIT {code}" if code else "")
            )
        (csv_seconds, csv_peak, _), (xlsx_seconds, xlsx_peak, _) = best.values()
        print(
            f"  xlsx / csv: {xlsx_seconds / csv_seconds:.2f}x the time,"
            f" {xlsx_peak / csv_peak:.2f}x the peak"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", default="100000", help="valid contacts per export, comma-separated"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="dry runs of each, the fastest shown (noisy hosts)"
    )
    args = parser.parse_args()
    for rows in (int(n) for n in args.rows.split(",")):
        bench(rows, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
