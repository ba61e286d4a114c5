"""Applying a mapping: ``Mapping.bind`` checks it against a source's header and resolves column
positions once; ``BoundMapping.apply`` is pure: one row of values in, a ``Contact`` or a
``Rejection`` out."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from connector.contacts import Contact, PhoneKey, Rejection, safe_name
from connector.errors import ConfigError, WarningCode, coded
from connector.mapping.headers import (
    INVISIBLE,
    SYNONYMS,
    closest,
    find_columns,
    listed,
    normalise_header,
    quoted,
    repeated,
    shown,
)
from connector.mapping.names import lookup, split_full_name, split_name
from connector.mapping.spec import (
    ColumnRef,
    FieldSpec,
    MappingSpec,
    RoleRef,
    names_of,
)
from connector.mapping.timestamps import SAMPLE_VALUES, TimestampReading, UnreadTimes

if TYPE_CHECKING:
    from connector.phones import PhoneProblem
    from connector.sources import SourceRow

_MULTI = " ::: "
_DIGIT = re.compile(r"\d")

REMOVED_IN_CRM = "removed_in_crm"
"""The reason of a row a ``removed_when`` rule matched: its contact was removed from the CRM
(a soft delete), so it is never sent and its numbers are removed from Kore
(``changes.removed``) unless another row of the run holds them."""


@dataclass(frozen=True)
class ColumnUse:
    """Where a mapping reads columns. A plain name must be in the export unless ``optional``
    (``if_present: true``); when no column of the use is there at all, a use with a ``warning``
    goes on with it (the region column, a do-not-call rule) and any other is an error."""

    where: str
    candidates: list[ColumnRef]
    optional: bool
    warning: tuple[str, WarningCode] | None = None
    """What the run does without the column, and the code a tenant acknowledges it by."""


@dataclass(frozen=True)
class Mapping:
    name: str
    spec: MappingSpec

    def columns(self) -> list[ColumnUse]:
        """Every column reference: where in the mapping, its candidates, whether it may be absent.

        Absent optional columns are silent, except the two whose absence changes who is dialled
        or how a number is read: a do-not-call rule and the region column.
        """
        spec = self.spec
        uses = [
            ColumnUse(f"fields.{name}.from", field_spec.from_, field_spec.if_present)
            for name, field_spec in spec.fields.items()
            if field_spec.from_
        ]
        for where, columns in (
            ("id", spec.id),
            ("updated_at", spec.updated_at),
            ("full_name", spec.full_name),
            ("company", spec.company),
            ("is_company", spec.is_company),
        ):
            if columns:
                uses.append(ColumnUse(where, columns.from_, columns.if_present))
        uses.append(ColumnUse("phone.from", spec.phone.from_, optional=False))
        if spec.phone.region_from:
            uses.append(
                ColumnUse(
                    "phone.region_from",
                    spec.phone.region_from,
                    optional=False,
                    warning=("every number is read in the default region", "no_region_column"),
                )
            )
        uses += [
            ColumnUse(
                f"skip_when.{i}.field",
                rule.field,
                rule.if_present,
                warning=("no row is skipped by that rule", "no_do_not_call_column"),
            )
            for i, rule in enumerate(spec.skip_when)
        ]
        # Silent when absent with if_present: most exports list live contacts only (a
        # Salesforce report has no IsDeleted), and then no row is removed, rightly.
        uses += [
            ColumnUse(f"removed_when.{i}.field", rule.field, rule.if_present)
            for i, rule in enumerate(spec.removed_when)
        ]
        return uses

    def bind(self, header: Sequence[str], source: str) -> BoundMapping:
        """Resolve column names against a header; a missing column is a ``ConfigError``."""
        positions: dict[str, int] = {}
        for i, name in enumerate(header):
            positions.setdefault(normalise_header(name), i)
        warnings: list[str] = []
        resolved: dict[str, list[int]] = {}
        tokens: dict[int, str] = {}
        for use in self.columns():
            where, candidates = use.where, names_of(use.candidates)
            found: list[int] = []
            for ref in use.candidates:
                hits = find_columns(names_of([ref]), header, positions, tokens)
                if not hits and isinstance(ref, str) and not use.optional:
                    raise ConfigError(
                        f"mapping {self.name}: {where} names '{ref}', which {source} lacks"
                        f"{closest([ref], tabular(header))}",
                        hint="fix the name, or write alternatives as {any: [A, B]}; "
                        + columns_there(header),
                    )
                found += hits
            if not found and (use.optional or use.warning):
                if use.warning:
                    consequence, code = use.warning
                    warnings.append(
                        coded(
                            f"mapping {self.name}: {where} names {described(use.candidates)}, "
                            f"which {source} lacks; {consequence}",
                            code,
                        )
                    )
            elif not found:
                raise ConfigError(
                    f"mapping {self.name}: {where} names {described(use.candidates)}, which "
                    f"{source} lacks{closest(candidates, tabular(header))}",
                    hint=columns_there(header),
                )
            resolved[where] = found
        self._need_a_name(resolved, header, source)
        warnings += [coded(w, "repeated_column") for w in repeated(header, resolved, source)]
        labels: dict[int, int] = {}
        for ref, label_columns in zip(self.spec.phone.from_, self.spec.phone.labels, strict=False):
            for value_at in find_columns(names_of([ref]), header, positions, tokens):
                token = tokens.get(value_at, "")
                names = [n.replace("*", token) for n in label_columns]
                found_labels = [
                    positions[n] for n in map(normalise_header, names) if n in positions
                ]
                if found_labels:
                    labels[value_at] = found_labels[0]
        return BoundMapping(self, tuple(header), resolved, tuple(warnings), labels)

    def _need_a_name(
        self, resolved: dict[str, list[int]], header: Sequence[str], source: str
    ) -> None:
        """Any one name column will do: the row rule (at least one name) decides per row."""
        spec = self.spec
        wheres = ["fields.firstName.from", "fields.lastName.from", "full_name"]
        fixed = [fs for n, fs in spec.fields.items() if n != "salutation" and fs.value is not None]
        if fixed or any(resolved.get(where) for where in wheres):
            return
        refs = [c for n, fs in spec.fields.items() if n != "salutation" for c in fs.from_]
        refs += spec.full_name.from_ if spec.full_name else []
        raise ConfigError(
            f"mapping {self.name}: {source} has no name column ({described(refs)})",
            hint=columns_there(header),
        )


def tabular(header: Sequence[str]) -> Sequence[str]:
    """The header, when it reads as a table's and its names may be shown: two cells or more,
    each printable text (no control character). Else nothing: the first line of a file that is
    no table may be a secret (``/etc/shadow`` read as CSV is one cell, ``root:*:20228:0:…``),
    and a binary file's is bytes."""
    return header if len(header) >= 2 and all(cell.isprintable() for cell in header) else []


def columns_there(header: Sequence[str]) -> str:
    """The hint that lists a header's columns (only a ``tabular`` one's); a header of one or
    two cells is more likely a report's title than the table's header, which then needs
    naming."""
    hint = (
        f"columns there: {listed(header)}"
        if tabular(header)
        else "the header row is not shown: it does not read as a table's (two cells or more,"
        " each printable text)"
    )
    if len(header) <= 2:
        hint += (
            "; if the table's header is further down (below a report's title), name its line"
            " in source.header_row"
        )
    return hint


def described(refs: Sequence[ColumnRef]) -> str:
    """Column references for a one-line message: plain and ``any`` names quoted, a ``{role: …}``
    by its first name and its role, not the synonym table's every name."""
    parts = [
        f"'{SYNONYMS[ref.role][0]}' or another {ref.role} synonym"
        if isinstance(ref, RoleRef)
        else quoted(names_of([ref]))
        for ref in refs
    ]
    return " or ".join(parts)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where a bound mapping reads each thing, worked out once from its positions and spec, so
    that mapping a row only reads cells: no key is built, no rule folded, per row."""

    placeholders: frozenset[str]
    ids: tuple[int, ...]
    rules: tuple[tuple[str, int, frozenset[str]], ...]
    """The do-not-call (``skip_when``) then the ``removed_when`` rules' cells, in the order they
    are tried: each as the rejection's reason, the column and the values (folded) that match."""
    first: tuple[FieldSpec, tuple[int, ...]] | None
    last: tuple[FieldSpec, tuple[int, ...]] | None
    salutation: tuple[FieldSpec, tuple[int, ...]] | None
    full_name: tuple[int, ...]
    companies: tuple[int, ...]
    is_company: tuple[int, ...]
    regions: tuple[int, ...]
    updated_at: tuple[int, ...]
    phones: tuple[tuple[int, int | None], ...]
    """Each phone column with its label column, if it has one."""
    prefer: tuple[str, ...]
    never: tuple[str, ...]
    read: tuple[int, ...]
    """Every column the mapping reads, in order: what a rejection shows."""
    cleaned: tuple[int, ...]
    """The columns read and the phone label columns: those ``_cells`` reads."""
    blank: list[str]
    """A row of empty cells, as wide as the columns read: what ``_cells`` fills in."""
    dnc_known: bool
    """Whether this export can say "do not call": some do-not-call rule found its column.
    Only such an export can lift a flag an earlier export set."""


_CASES: dict[str, Callable[[str], str]] = {
    "upper": str.upper,
    "lower": str.lower,
    "title": str.title,
}


@dataclass(frozen=True)
class BoundMapping:
    mapping: Mapping
    header: tuple[str, ...]
    positions: dict[str, list[int]]
    warnings: tuple[str, ...]
    phone_labels: dict[int, int] = field(default_factory=dict)
    timestamps: TimestampReading | None = None
    """How ``updated_at`` is read, once learnt from the unit's values (``learn_timestamps``)."""
    unread_times: UnreadTimes = field(default_factory=UnreadTimes)
    """The ``updated_at`` values that were no time, counted as rows are mapped: the one thing
    ``apply`` changes, so that ``timestamp_warnings`` can tell the run."""

    # The phone library and the country names load when a mapping maps its first row, not
    # when a mapping is read: a run with nothing new to read never pays for them.

    @cached_property
    def _parse_phone(self) -> Callable[[str, str], PhoneKey | PhoneProblem | None]:
        from connector.phones import parse_phone

        return parse_phone

    @cached_property
    def _region_for(self) -> Callable[[str], str | None]:
        from connector.countries import region_for

        return region_for

    @cached_property
    def _listed_numbers(self) -> Callable[[str], list[tuple[str, str]] | None]:
        from connector.phones import listed_numbers

        return listed_numbers

    @cached_property
    def _plan(self) -> _Plan:
        spec, positions = self.mapping.spec, self.positions

        def at(where: str) -> tuple[int, ...]:
            return tuple(positions.get(where, ()))

        names = {n: (fs, at(f"fields.{n}.from")) for n, fs in spec.fields.items()}
        rules = [
            (REMOVED_IN_CRM if kind == "removed_when" else kind, pos, wanted)
            for kind, kind_rules in (
                ("skip_when", spec.skip_when),
                ("removed_when", spec.removed_when),
            )
            for i, rule in enumerate(kind_rules)
            for wanted in [frozenset(v.strip().casefold() for v in rule.in_)]
            for pos in positions[f"{kind}.{i}.field"]
        ]
        phone = spec.phone
        read = tuple(sorted({p for found in positions.values() for p in found}))
        cleaned = tuple(sorted({*read, *self.phone_labels.values()}))
        return _Plan(
            placeholders=frozenset(p.strip().casefold() for p in spec.placeholders),
            ids=at("id"),
            rules=tuple(rules),
            first=names.get("firstName"),
            last=names.get("lastName"),
            salutation=names.get("salutation"),
            full_name=at("full_name"),
            companies=at("company"),
            is_company=at("is_company"),
            regions=at("phone.region_from"),
            updated_at=at("updated_at"),
            phones=tuple((pos, self.phone_labels.get(pos)) for pos in positions["phone.from"]),
            prefer=tuple(p.casefold() for p in phone.prefer_labels),
            never=tuple(n.casefold() for n in phone.never_labels),
            read=read,
            cleaned=cleaned,
            blank=[""] * (max(cleaned, default=-1) + 1),
            dnc_known=any(
                positions.get(f"skip_when.{i}.field") for i in range(len(spec.skip_when))
            ),
        )

    def __getstate__(self) -> dict[str, object]:
        """What pickling keeps (a mapping goes to worker processes): the fields, not what was
        worked out from them or looked up for them (``_plan``, the phone and country
        functions), which the other process works out again on its first row."""
        return {k: v for k, v in self.__dict__.items() if k not in _CACHED}

    def _cells(self, values: Sequence[str]) -> list[str]:
        """The row's cells as the mapping reads them, by position: a placeholder (``null``,
        ``N/A``, ``-``) is empty, and so is a cell past the row's end or of a column the mapping
        does not read."""
        plan = self._plan
        placeholders, width = plan.placeholders, len(values)
        cells = plan.blank.copy()
        for pos in plan.cleaned:
            if pos < width:
                text = values[pos]
                if text and text.strip().casefold() not in placeholders:
                    cells[pos] = text
        return cells

    def marked(self, values: Sequence[str]) -> bool:
        """Whether a ``skip_when`` or ``removed_when`` rule matches the row, that is whether
        ``apply`` rejects it as ``skip_when`` or ``removed_in_crm`` (cheap: no phone is parsed,
        no country looked up)."""
        return self._rule(values) is not None

    def apply(
        self, values: Sequence[str], *, source: str, row: int, default_region: str
    ) -> Contact | Rejection:
        """Map one row. Pure: the same values always give the same answer."""
        plan = self._plan
        cells = self._cells(values)
        record_id = _first(plan.ids, cells)
        # Do-not-call first: it belongs to the number, and a removed record's wish not to be
        # called still stands (what becomes of the number is then changes.do_not_call's).
        rule = self._rule(values)
        if rule is not None:
            reason, matched = rule
            return self._reject(
                reason,
                matched,
                values,
                source,
                row,
                record_id,
                keys=self._keys(cells, default_region),
            )
        first = self._field(plan.first, cells) if plan.first else ""
        last = self._field(plan.last, cells) if plan.last else ""
        salutation = self._field(plan.salutation, cells) if plan.salutation else ""
        if not first and not last:
            companies, flag = self._organisation(cells)
            title, first, last = split_full_name(
                _first(plan.full_name, cells), companies=companies, company_flag=flag
            )
            if title and not salutation and plan.salutation:
                salutation = lookup(plan.salutation[0].map, title)
        (first, a), (last, b), (salutation, c) = map(safe_name, (first, last, salutation))
        if not first and not last:
            return self._reject(
                "name_missing",
                "first and last name are both empty",
                values,
                source,
                row,
                record_id,
                keys=self._keys(cells, default_region),
            )
        region, unknown = self._region(cells, default_region)
        problem: PhoneProblem | None = None
        numbers, held = self._phone_candidates(cells)
        parse_phone = self._parse_phone
        for candidate in numbers:
            parsed = parse_phone(candidate, region or "ZZ")
            if isinstance(parsed, PhoneKey):
                return Contact(
                    key=parsed.key,
                    first_name=first,
                    last_name=last,
                    salutation=salutation,
                    phone=parsed,
                    source=source,
                    row=row,
                    record_id=record_id,
                    updated_at=self._updated_at(cells, source),
                    dnc_known=plan.dnc_known,
                    cleaned=a or b or c,
                )
            problem = problem or parsed
        if problem is None:
            return self._reject(
                "phone_missing",
                "; ".join(held) or "no phone number in any phone column",
                values,
                source,
                row,
                record_id,
            )
        if problem.reason == "phone_invalid" and region is None:
            return self._reject(
                "country_unknown",
                f"country '{unknown}' is not recognised, and the number has no country code",
                values,
                source,
                row,
                record_id,
                subject=unknown,
            )
        detail = {
            "phone_mangled": "a spreadsheet turned the number into scientific notation; digits are lost",
            "phone_invalid": f"not a valid number for region {region}",
        }[problem.reason]
        return self._reject(problem.reason, detail, values, source, row, record_id)

    def _rule(self, values: Sequence[str]) -> tuple[str, str] | None:
        """The reason (``skip_when``, ``removed_in_crm``) and ``Column=value`` of the first cell
        a ``skip_when`` rule, or else a ``removed_when`` rule, matches, ignoring case and
        surrounding spaces; None when none does."""
        placeholders = self._plan.placeholders
        for reason, pos, wanted in self._plan.rules:
            folded = _cell(values, pos).strip().casefold()
            if (folded if folded not in placeholders else "") in wanted:
                return reason, f"{self.header[pos].strip()}={_cell(values, pos).strip()}"
        return None

    def _keys(self, cells: list[str], default_region: str) -> tuple[str, ...]:
        """Every valid number of a row: a person who asked not to be called is called on none."""
        region, _ = self._region(cells, default_region)
        numbers, _ = self._phone_candidates(cells)
        parsed = (self._parse_phone(c, region or "ZZ") for c in numbers)
        return tuple(dict.fromkeys(p.key for p in parsed if isinstance(p, PhoneKey)))

    def _region(self, cells: list[str], default_region: str) -> tuple[str | None, str]:
        """The row's region: the first country cell that names one; the default when no cell
        has a country; None (and the value) when a country is given but names no region, since
        guessing would key the number in the wrong country."""
        unknown = ""
        for pos in self._plan.regions:
            text = cells[pos].strip()
            if not text:
                continue
            found = self._region_for(text)
            if found:
                return found, ""
            unknown = unknown or text
        return (None, unknown) if unknown else (default_region, "")

    def _phone_candidates(self, cells: list[str]) -> tuple[list[str], list[str]]:
        """Every number in the phone columns, preferred labels first and fax or pager lines left
        out; and what the cells that held none held instead, for the rejection to say.

        A cell may hold several numbers joined by ``" ::: "`` (Google Contacts), a ``"* "``
        marking the primary one, or a JSON list of them (a CRM's API export), each with its own
        label. Text without a digit (``pager``, ``mobile``) is no number: a row with nothing
        else is ``phone_missing``, never a number "not valid" or of an unknown country."""
        plan = self._plan
        never, placeholders = plan.never, plan.placeholders
        found: list[tuple[str, str]] = []
        held: list[str] = []
        for pos, label_at in plan.phones:
            cell = cells[pos]
            if not cell.strip():
                continue
            label = "" if label_at is None else cells[label_at]
            listed = self._listed_numbers(cell) if cell.lstrip()[:1] == "[" else None
            numbers = (
                _numbers_in(cell, label)
                if listed is None
                else [(own or label, number) for own, number in listed]
            )
            before, dialled = len(found), 0
            for own, number in numbers:
                if own and any(word in own.casefold() for word in never):
                    continue
                dialled += 1
                if _DIGIT.search(number) and number.strip().casefold() not in placeholders:
                    found.append((own, number))
            if len(found) == before and (dialled or listed is not None):
                held.append(_held(self.header[pos], cell, listed=listed is not None))
        prefer = plan.prefer
        if prefer and len(found) > 1 and any(own for own, _ in found):
            found.sort(key=lambda item: not any(p in item[0].casefold() for p in prefer))
        return [number for _, number in found], held

    def learn_timestamps(self, values: Iterable[str]) -> BoundMapping:
        """This mapping, reading ``updated_at`` as a sample of the unit's values calls for
        (``sample_updated_at``): day or month first, in the formats they are written in; or in
        the mapping's ``updated_at_format``. Its tally of unreadable values starts empty."""
        reading = TimestampReading.learn(values, fixed=self.mapping.spec.updated_at_format)
        return replace(self, timestamps=reading, unread_times=UnreadTimes())

    def timestamp_warnings(self) -> list[str]:
        """Once the unit's rows are mapped: the ``updated_at`` values that could not be read as a
        time (their rows count as the oldest of their number), as one warning; or none."""
        return self.unread_times.warnings()

    @cached_property
    def _reading(self) -> TimestampReading:
        """The learnt reading; without one, month-first (as US exports write dates) or the
        mapping's ``updated_at_format``."""
        return self.timestamps or TimestampReading(fixed=self.mapping.spec.updated_at_format)

    def _updated_at(self, cells: list[str], source: str) -> datetime | None:
        """The row's change time: the first non-empty ``updated_at`` cell, read; a value that is
        no time is noted for ``timestamp_warnings``."""
        for pos in self._plan.updated_at:
            text = cells[pos].strip()
            if text:
                when = self._reading.read(text)
                if when is None:
                    self.unread_times.note(source, self.header[pos].strip(), text)
                return when
        return None

    def _organisation(self, cells: list[str]) -> tuple[list[str], str]:
        """The row's company cells and ``is_company`` flag: what tells an organisation's name,
        kept whole, from a person's ``Last, First`` (``names.split_full_name``)."""
        plan = self._plan
        return [cells[pos] for pos in plan.companies], _first(plan.is_company, cells)

    def _field(self, field_spec: tuple[FieldSpec, tuple[int, ...]], cells: list[str]) -> str:
        fs, positions = field_spec
        if fs.value is not None:
            return fs.value
        text = ""
        for pos in positions:
            text = cells[pos].translate(INVISIBLE)
            if fs.trim:
                text = " ".join(text.split())  # every run of whitespace one space, ends none
            if text:
                break
        if text and fs.split:
            companies, flag = self._organisation(cells)
            text = split_name(text, fs.split, companies=companies, company_flag=flag)
        if text and fs.map:
            text = lookup(fs.map, text)
        if text and fs.case:
            text = _CASES[fs.case](text)
        return text or fs.default

    def _reject(
        self,
        reason: str,
        detail: str,
        values: Sequence[str],
        source: str,
        row: int,
        record_id: str,
        *,
        subject: str = "",
        keys: tuple[str, ...] = (),
    ) -> Rejection:
        shown = {
            self.header[p].strip(): _cell(values, p)
            for p in self._plan.read
            if _cell(values, p).strip()
        }
        return Rejection(reason, detail, source, row, record_id, shown, subject, keys)


_CACHED = frozenset(
    name for name, value in vars(BoundMapping).items() if isinstance(value, cached_property)
)
"""What a bound mapping works out or looks up on first use: never pickled."""


def _cell(values: Sequence[str], pos: int) -> str:
    return values[pos] if pos < len(values) else ""


def _first(positions: tuple[int, ...], cells: list[str]) -> str:
    """The first non-empty cell of those at ``positions`` (of ``BoundMapping._cells``), without
    surrounding spaces."""
    for pos in positions:
        text = cells[pos].strip()
        if text:
            return text
    return ""


def _numbers_in(cell: str, label: str) -> list[tuple[str, str]]:
    """A cell's numbers with their labels. Several joined by ``" ::: "`` take the label in the
    same place of the label cell when it has as many, else the whole label."""
    if _MULTI not in cell:
        return [(label, cell.removeprefix("* "))]
    parts, labels = cell.split(_MULTI), label.split(_MULTI)
    own = labels if len(labels) == len(parts) else [label] * len(parts)
    return [(own[i], part.removeprefix("* ")) for i, part in enumerate(parts)]


def _held(column: str, cell: str, *, listed: bool) -> str:
    """What a phone cell held instead of a number, for a rejection's detail."""
    if listed:
        return f"{shown(column)} held a list with no number to dial: '{shown(cell, 60)}'"
    return f"{shown(column)} held '{shown(cell)}', not a number"


def sample_updated_at(bound: BoundMapping, rows: Iterable[SourceRow]) -> list[str]:
    """The first ``SAMPLE_VALUES`` non-empty ``updated_at`` values of a unit's rows, for
    ``BoundMapping.learn_timestamps``. Reads no row when there is nothing to learn: no
    ``updated_at`` column in the export, or the mapping's own ``updated_at_format``."""
    if not bound.positions.get("updated_at") or bound.mapping.spec.updated_at_format:
        return []
    found: list[str] = []
    for row in rows:
        text = "" if row.error else _first(bound._plan.updated_at, bound._cells(row.values))
        if text:
            found.append(text)
            if len(found) >= SAMPLE_VALUES:
                break
    return found
