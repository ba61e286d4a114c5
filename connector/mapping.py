"""Mappings: how one CRM's export becomes Kore rows.

``load_mapping`` reads and validates the YAML; ``Mapping.bind`` checks it against a source's
header and resolves column positions once; ``BoundMapping.apply`` is pure: one row of values in,
a ``Contact`` or a ``Rejection`` out.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connector.contacts import Contact, PhoneKey, Rejection, safe_name
from connector.errors import ConfigError
from connector.settings import load_yaml

if TYPE_CHECKING:
    from collections.abc import Callable

    from connector.phones import PhoneProblem
    from connector.settings import TenantSettings

_SPACES = re.compile(r"\s+")
_MULTI = " ::: "
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_US_DATES = ("%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y")
PLACEHOLDERS = (
    "null",
    "none",
    "nil",
    "n/a",
    "n.a.",
    "-",
    "--",
    "#n/a",
    "#null!",
    "(blank)",
    "(none)",
    "(empty)",
    "undefined",
)
"""What exports write for "no value": read as empty in every column a mapping reads. ``na`` is
not among them by default: it is a Korean surname."""
SALUTATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "dr",
        "prof",
        "sir",
        "dame",
        "rev",
        "herr",
        "frau",
        "hr",
        "mme",
        "mlle",
        "sr",
        "sra",
        "srta",
        "sig",
        "dott",
    ]
)
"""Titles that may open a full name (with or without a dot): they go to the salutation."""
NEVER_DIALLED = ("fax", "pager")


def _columns(value: Any) -> Any:
    return [value] if isinstance(value, str | dict) else value


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AnyOf(_Spec):
    """``{any: [MobilePhone, Mobile]}``: the same column under the names different export variants
    give it. Any of them may be missing, as long as one of the group (or of the list) is there.
    A plain name, by contrast, must be in the export: a typo is an error, never skipped."""

    any_: list[str] = Field(alias="any", min_length=1)


ColumnRef = str | AnyOf


def names_of(refs: Sequence[ColumnRef]) -> list[str]:
    """Every column name the references mention, in order."""
    return [name for ref in refs for name in (ref.any_ if isinstance(ref, AnyOf) else [ref])]


class Columns(_Spec):
    """Columns for ``id`` or ``updated_at``: the first non-empty wins; optional with if_present."""

    from_: list[ColumnRef] = Field(alias="from", min_length=1)
    if_present: bool = False

    _normalise_from = field_validator("from_", mode="before")(_columns)


def _columns_shorthand(value: Any) -> Any:
    return {"from": value} if isinstance(value, str | list) else value


class FieldSpec(_Spec):
    """One Kore column: where its value comes from and how it is cleaned."""

    from_: list[ColumnRef] = Field(default_factory=list, alias="from")
    if_present: bool = False
    value: str | None = None
    map: dict[str, str] = Field(default_factory=dict)
    default: str = ""
    split: Literal["first", "last", "salutation"] | None = None
    case: Literal["upper", "lower", "title"] | None = None
    trim: bool = True

    _normalise_from = field_validator("from_", mode="before")(_columns)

    @model_validator(mode="after")
    def _from_or_value(self) -> FieldSpec:
        if not self.from_ and self.value is None:
            raise ValueError("give 'from' or 'value'")
        return self


class SkipRule(_Spec):
    field: list[ColumnRef]
    in_: list[str] = Field(alias="in", min_length=1)
    if_present: bool = False

    _normalise_field = field_validator("field", mode="before")(_columns)


class PhoneSpec(_Spec):
    """Phone columns in order of preference. ``labels`` (parallel to ``from``) name columns that
    say what each number is; numbers whose label holds one of ``prefer_labels`` are tried first,
    and numbers whose label holds one of ``never_labels`` (fax, pager) are never dialled. A ``*``
    in a column name stands for a number: ``Phone * - Value`` is every ``Phone N - Value``, in
    order of N, and ``Phone * - Label`` its label."""

    from_: list[ColumnRef] = Field(alias="from", min_length=1)
    region_from: list[ColumnRef] = Field(default_factory=list)
    labels: list[list[str]] = Field(default_factory=list)
    prefer_labels: list[str] = Field(default_factory=list)
    never_labels: list[str] = Field(default_factory=lambda: list(NEVER_DIALLED))

    _normalise = field_validator("from_", "region_from", mode="before")(_columns)

    @field_validator("labels", mode="before")
    @classmethod
    def _label_lists(cls, value: Any) -> Any:
        return [_columns(item) for item in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _labels_fit(self) -> PhoneSpec:
        if len(self.labels) > len(self.from_):
            raise ValueError("phone.labels has more entries than phone.from")
        return self


class MappingSpec(_Spec):
    id: Columns | None = None
    updated_at: Columns | None = None
    full_name: Columns | None = None
    skip_when: list[SkipRule] = Field(default_factory=list)
    fields: dict[Literal["firstName", "lastName", "salutation"], FieldSpec]
    phone: PhoneSpec
    placeholders: list[str] = Field(default_factory=lambda: list(PLACEHOLDERS))
    description: str = ""

    _normalise = field_validator("id", "updated_at", "full_name", mode="before")(_columns_shorthand)

    @property
    def id_columns(self) -> list[str]:
        return names_of(self.id.from_) if self.id else []

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"from": v} if isinstance(v, str | list) else v for k, v in value.items()}
        return value


@dataclass(frozen=True)
class ColumnUse:
    """Where a mapping reads columns. A plain name must be in the export unless ``optional``
    (``if_present: true``); when no column of the use is there at all, a use with a ``warning``
    goes on with it (the region column, a do-not-call rule) and any other is an error."""

    where: str
    candidates: list[ColumnRef]
    optional: bool
    warning: str | None = None


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
                    warning="every number is read in the default region",
                )
            )
        uses += [
            ColumnUse(
                f"skip_when.{i}.field",
                rule.field,
                rule.if_present,
                warning="no row is skipped by that rule",
            )
            for i, rule in enumerate(spec.skip_when)
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
                hits = _find(names_of([ref]), header, positions, tokens)
                if not hits and isinstance(ref, str) and not use.optional:
                    raise ConfigError(
                        f"mapping {self.name}: {where} names '{ref}', which {source} lacks"
                        f"{_closest([ref], header)}",
                        hint="fix the name, or write alternatives as {any: [A, B]}; "
                        f"columns there: {_listed(header)}",
                    )
                found += hits
            if not found and (use.optional or use.warning):
                if use.warning:
                    warnings.append(
                        f"mapping {self.name}: {where} names {_quoted(candidates)}, "
                        f"which {source} lacks; {use.warning}"
                    )
            elif not found:
                raise ConfigError(
                    f"mapping {self.name}: {where} names {_quoted(candidates)}, which {source} lacks"
                    f"{_closest(candidates, header)}",
                    hint=f"columns there: {_listed(header)}",
                )
            resolved[where] = found
        self._need_a_name(resolved, header, source)
        warnings += _repeated(header, resolved, source)
        labels: dict[int, int] = {}
        for ref, label_columns in zip(self.spec.phone.from_, self.spec.phone.labels, strict=False):
            for value_at in _find(names_of([ref]), header, positions, tokens):
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
        names = names_of(refs + (spec.full_name.from_ if spec.full_name else []))
        raise ConfigError(
            f"mapping {self.name}: {source} has no name column ({_quoted(names)})",
            hint=f"columns there: {_listed(header)}",
        )


def _find(
    candidates: Sequence[str],
    header: Sequence[str],
    positions: dict[str, int],
    tokens: dict[int, str],
) -> list[int]:
    """Positions of the candidates present, in the candidates' order; a ``*`` matches a number
    (``Phone * - Value``: every ``Phone N - Value`` by N), remembered in ``tokens``."""
    found: list[int] = []
    for candidate in map(normalise_header, candidates):
        if "*" not in candidate:
            if candidate in positions:
                found.append(positions[candidate])
            continue
        pattern = re.compile(re.escape(candidate).replace(r"\*", r"(\d+)") + "$")
        matches = []
        for name, pos in positions.items():
            match = pattern.match(name)
            if match:
                matches.append((int(match[1]), pos))
                tokens[pos] = match[1]
        found += [pos for _, pos in sorted(matches)]
    return found


def _repeated(header: Sequence[str], resolved: dict[str, list[int]], source: str) -> list[str]:
    """A column the mapping reads that the header has twice (HubSpot repeats ``Phone Number``
    for the company): the first is used, and the run says so."""
    counts: dict[str, int] = {}
    for name in header:
        counts[normalise_header(name)] = counts.get(normalise_header(name), 0) + 1
    read = sorted({p for found in resolved.values() for p in found})
    return [
        f"{source}: column '{shown(header[p])}' appears {counts[normalise_header(header[p])]} "
        "times; the first is read"
        for p in read
        if counts[normalise_header(header[p])] > 1
    ]


def normalise_header(name: str) -> str:
    return _SPACES.sub(" ", name.translate(_INVISIBLE)).strip().casefold()


_LISTED = 30
"""Columns a message lists before it says how many more there are."""


def shown(name: str, limit: int = 40) -> str:
    """A header name fit for a one-line message: control and invisible characters written as
    escapes (a binary file's header prints no raw bytes), a long name cut."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listed(header: Sequence[str]) -> str:
    names = [shown(h) for h in header]
    more = f" … and {len(names) - _LISTED:,} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def _quoted(names: Sequence[str]) -> str:
    return " or ".join(f"'{n}'" for n in names)


def _closest(candidates: Sequence[str], header: Sequence[str]) -> str:
    choices = {normalise_header(h): shown(h) for h in header}
    for name in candidates:
        close = difflib.get_close_matches(normalise_header(name), list(choices), n=1, cutoff=0.6)
        if close:
            return f" (closest: '{choices[close[0]]}')"
    return ""


@dataclass(frozen=True)
class BoundMapping:
    mapping: Mapping
    header: tuple[str, ...]
    positions: dict[str, list[int]]
    warnings: tuple[str, ...]
    phone_labels: dict[int, int] = field(default_factory=dict)

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
    def _placeholders(self) -> frozenset[str]:
        return frozenset(p.strip().casefold() for p in self.mapping.spec.placeholders)

    @cached_property
    def _labels(self) -> tuple[list[str], list[str]]:
        """The phone labels to try first, and those never dialled, folded once."""
        phone = self.mapping.spec.phone
        return [p.casefold() for p in phone.prefer_labels], [
            n.casefold() for n in phone.never_labels
        ]

    def _value(self, values: Sequence[str], pos: int) -> str:
        """A cell as the mapping reads it: a placeholder (``null``, ``N/A``, ``-``) is empty."""
        text = values[pos] if pos < len(values) else ""
        if text and text.strip().casefold() in self._placeholders:
            return ""
        return text

    def apply(
        self, values: Sequence[str], *, source: str, row: int, default_region: str
    ) -> Contact | Rejection:
        """Map one row. Pure: the same values always give the same answer."""
        spec = self.mapping.spec
        record_id = self._first("id", values)
        for i, rule in enumerate(spec.skip_when):
            wanted = {v.strip().casefold() for v in rule.in_}
            for pos in self.positions[f"skip_when.{i}.field"]:
                if self._value(values, pos).strip().casefold() in wanted:
                    column = self.header[pos].strip()
                    return self._reject(
                        "skip_when",
                        f"{column}={_cell(values, pos).strip()}",
                        values,
                        source,
                        row,
                        record_id,
                        keys=self._keys(values, default_region),
                    )
        names = {name: self._field(name, fs, values) for name, fs in spec.fields.items()}
        first, last = names.get("firstName", ""), names.get("lastName", "")
        salutation = names.get("salutation", "")
        if not first and not last:
            title, first, last = split_full_name(self._first("full_name", values))
            if title and not salutation and "salutation" in spec.fields:
                salutation = _lookup(spec.fields["salutation"].map, title)
        (first, a), (last, b), (salutation, c) = map(safe_name, (first, last, salutation))
        if not first and not last:
            return self._reject(
                "name_missing",
                "first and last name are both empty",
                values,
                source,
                row,
                record_id,
                keys=self._keys(values, default_region),
            )
        region, unknown = self._region(values, default_region)
        problem: PhoneProblem | None = None
        for candidate in self._phone_candidates(values):
            parsed = self._parse_phone(candidate, region or "ZZ")
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
                    updated_at=parse_timestamp(self._first("updated_at", values)),
                    dnc_known=self._dnc_known,
                    cleaned=a or b or c,
                )
            problem = problem or parsed
        if problem is None:
            return self._reject(
                "phone_missing",
                "no phone number in any phone column",
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

    @cached_property
    def _dnc_known(self) -> bool:
        """Whether this export can say "do not call": some do-not-call rule found its column.
        Only such an export can lift a flag an earlier export set."""
        rules = range(len(self.mapping.spec.skip_when))
        return any(self.positions.get(f"skip_when.{i}.field") for i in rules)

    def _keys(self, values: Sequence[str], default_region: str) -> tuple[str, ...]:
        """Every valid number of a row: a person who asked not to be called is called on none."""
        region, _ = self._region(values, default_region)
        parsed = (self._parse_phone(c, region or "ZZ") for c in self._phone_candidates(values))
        return tuple(dict.fromkeys(p.key for p in parsed if isinstance(p, PhoneKey)))

    def _region(self, values: Sequence[str], default_region: str) -> tuple[str | None, str]:
        """The row's region: the first country cell that names one; the default when no cell
        has a country; None (and the value) when a country is given but names no region, since
        guessing would key the number in the wrong country."""
        unknown = ""
        for pos in self.positions.get("phone.region_from", []):
            text = self._value(values, pos).strip()
            if not text:
                continue
            found = self._region_for(text)
            if found:
                return found, ""
            unknown = unknown or text
        return (None, unknown) if unknown else (default_region, "")

    def _phone_candidates(self, values: Sequence[str]) -> list[str]:
        """Every number in the phone columns, preferred labels first and fax or pager lines left
        out; a cell may hold several numbers joined by ``" ::: "`` (Google Contacts), a ``"* "``
        marking the primary one."""
        prefer, never = self._labels
        found: list[tuple[str, str]] = []
        for pos in self.positions["phone.from"]:
            cell = self._value(values, pos)
            if not cell.strip():
                continue
            label = self._value(values, self.phone_labels[pos]) if pos in self.phone_labels else ""
            if _MULTI not in cell:
                if not (label and any(word in label.casefold() for word in never)):
                    found.append((label, cell.removeprefix("* ")))
                continue
            parts, labels = cell.split(_MULTI), label.split(_MULTI)
            for i, part in enumerate(parts):
                own = labels[i] if len(labels) == len(parts) else label
                number = part.removeprefix("* ")
                if any(word in own.casefold() for word in never):
                    continue
                if number.strip().casefold() not in self._placeholders:
                    found.append((own, number))
        if prefer:
            found.sort(key=lambda item: not any(p in item[0].casefold() for p in prefer))
        return [number for _, number in found]

    def _first(self, where: str, values: Sequence[str]) -> str:
        for pos in self.positions.get(where, []):
            text = self._value(values, pos).strip()
            if text:
                return text
        return ""

    def _field(self, name: str, fs: FieldSpec, values: Sequence[str]) -> str:
        if fs.value is not None:
            return fs.value
        text = ""
        for pos in self.positions[f"fields.{name}.from"]:
            text = self._value(values, pos).translate(_INVISIBLE)
            if fs.trim:
                text = _SPACES.sub(" ", text).strip()
            if text:
                break
        if text and fs.split:
            text = split_name(text, fs.split)
        if text and fs.map:
            text = _lookup(fs.map, text)
        if text and fs.case:
            text = {"upper": str.upper, "lower": str.lower, "title": str.title}[fs.case](text)
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
        read = sorted({p for positions in self.positions.values() for p in positions})
        shown = {self.header[p].strip(): _cell(values, p) for p in read if _cell(values, p).strip()}
        return Rejection(reason, detail, source, row, record_id, shown, subject, keys)


def _cell(values: Sequence[str], pos: int) -> str:
    return values[pos] if pos < len(values) else ""


def _lookup(table: dict[str, str], text: str) -> str:
    if text in table:
        return table[text]
    folded = text.casefold()
    for key, value in table.items():
        if key.casefold() == folded:
            return value
    return text


def split_full_name(full: str) -> tuple[str, str, str]:
    """``Mr. Ada King Lovelace`` -> (``Mr.``, ``Ada``, ``King Lovelace``); ``Lovelace, Ada``
    -> ("", ``Ada``, ``Lovelace``); a title at the start is the salutation, never the name."""
    text = _SPACES.sub(" ", full.translate(_INVISIBLE)).strip()
    title = ""
    head, _, rest = text.partition(" ")
    if rest and head.rstrip(".").casefold() in SALUTATIONS:
        title, text = head, rest.strip()
    if "," in text:
        last, _, first = text.partition(",")
    else:
        first, _, last = text.partition(" ")
    return title, first.strip(), last.strip()


def split_name(full: str, part: Literal["first", "last", "salutation"]) -> str:
    """``Ada King Lovelace`` -> first ``Ada``, last ``King Lovelace``; ``Lovelace, Ada`` too;
    a leading title (``Mr.``, ``Dr``, ``Herr``) is the salutation, neither first nor last."""
    title, first, last = split_full_name(full)
    return {"first": first, "last": last, "salutation": title}[part]


def parse_timestamp(text: str) -> datetime | None:
    """ISO-8601 (Salesforce, HubSpot, Dynamics) or US dates (Zoho); naive values are UTC."""
    if not text:
        return None
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for form in _US_DATES:
            try:
                parsed = datetime.strptime(text, form)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def builtin_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml")
        for p in files("connector.mappings").iterdir()
        if p.name.endswith(".yaml")
    )


def reading_parts(mapping: Mapping, tenant: TenantSettings) -> tuple[str, str, int, str]:
    """What decides how a tenant's rows are read, besides their cells and header: the mapping,
    the default region and the limit on names."""
    kore = tenant.kore
    return (
        mapping.spec.model_dump_json(),
        tenant.default_region,
        kore.max_name_length,
        kore.long_names,
    )


def reading_of(mapping: Mapping, tenant: TenantSettings) -> str:
    """``reading_parts`` as a short hash: remembered with each file a completed run read."""
    return hashlib.sha256(repr(reading_parts(mapping, tenant)).encode()).hexdigest()[:32]


def read_otherwise(
    remembered: Sequence[tuple[str, str]], readings: dict[str, str | None], reading: str
) -> str | None:
    """A warning when files this run skips as already read were read another way (the mapping,
    region or name limits have changed since), naming them and ``--full``; else None."""
    names = [name for ident, name in remembered if readings.get(ident) not in (None, reading)]
    if not names:
        return None
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5:,} more" if len(names) > 5 else "")
    return (
        f"{shown} {'was' if len(names) == 1 else 'were'} read before with another mapping, "
        f"region or name limit and {'is' if len(names) == 1 else 'are'} not read again; "
        "`sync --full` reads them with the current one"
    )


def load_mapping(name_or_path: str, *, base: Path | None = None) -> Mapping:
    """A built-in by name (``salesforce``) or a YAML file by path."""
    if name_or_path in builtin_names():
        resource = files("connector.mappings") / f"{name_or_path}.yaml"
        return _parse(name_or_path, resource.read_text(encoding="utf-8"))
    path = Path(name_or_path)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.suffix:
        raise ConfigError(
            f"mapping '{name_or_path}' is neither a built-in nor a file path",
            hint=f"built-ins: {', '.join(builtin_names())}",
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"mapping {path}: cannot read: {exc.strerror}") from None
    return _parse(str(path), text)


def _parse(name: str, text: str) -> Mapping:
    data = load_yaml(text, Path(f"mapping {name}"))
    try:
        return Mapping(name, MappingSpec.model_validate(data))
    except ValidationError as exc:
        error = exc.errors(include_input=False)[0]
        where = (
            ".".join(str(p) for p in error["loc"])
            .replace("from_", "from")
            .replace("in_", "in")
            .replace("any_", "any")
        )
        problem = {"missing": "is required", "extra_forbidden": "is not a mapping key"}.get(
            error["type"], error["msg"].removeprefix("Value error, ")
        )
        raise ConfigError(
            f"mapping {name}: {where or 'mapping'} {problem}",
            hint="see docs/mappings.md",
        ) from None
