"""The mapping language's YAML models: what a mapping file may say, validated by pydantic.

See docs/mappings.md for the language itself; ``load.py`` reads a file into these models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.mapping.headers import SYNONYMS, Role

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
NEVER_DIALLED = ("fax", "pager")
MOBILE_LABELS = ("mobile", "cell")
"""Labels tried first by default: Kore's field is ``cellPhoneNumber``."""


def _columns(value: Any) -> Any:
    """A column reference or a list of them, as a list; a ``{role: …}`` the synonym table lacks
    is named here, in one line, rather than as a failed match against every kind of reference."""
    listed = [value] if isinstance(value, str | dict) else value
    for item in listed if isinstance(listed, list) else []:
        role = item.get("role") if isinstance(item, dict) else None
        if role is not None and role not in SYNONYMS:
            raise ValueError(f"{{role: {role}}} is not a role; roles: {', '.join(SYNONYMS)}")
    return listed


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AnyOf(_Spec):
    """``{any: [MobilePhone, Mobile]}``: the same column under the names different export variants
    give it. Any of them may be missing, as long as one of the group (or of the list) is there.
    A plain name, by contrast, must be in the export: a typo is an error, never skipped."""

    any_: list[str] = Field(alias="any", min_length=1)


class RoleRef(_Spec):
    """``{role: mobile}``: every name the synonym table (``headers.SYNONYMS``) gives the role, in
    its order of preference, as one group any of whose names may be missing (like ``{any:}``).
    ``generic`` reads its columns this way, so a name added to the table is read at once. It
    stands for the names alone: ``Title`` and a bare ``Name`` beside other columns are read by
    meaning only in the mapping ``init`` writes (``headers.roles``)."""

    role: Role


ColumnRef = str | AnyOf | RoleRef


def names_of(refs: Sequence[ColumnRef]) -> list[str]:
    """Every column name the references mention, in order."""
    return [name for ref in refs for name in _names(ref)]


def _names(ref: ColumnRef) -> Sequence[str]:
    if isinstance(ref, AnyOf):
        return ref.any_
    if isinstance(ref, RoleRef):
        return SYNONYMS[ref.role]
    return [ref]


class Columns(_Spec):
    """Columns for ``id``, ``updated_at``, ``full_name``, ``company`` or ``is_company``: the
    first non-empty wins; optional with if_present."""

    from_: list[ColumnRef] = Field(alias="from", min_length=1)
    if_present: bool = False

    _normalise_from = field_validator("from_", mode="before")(_columns)


def _shorthand(value: Any) -> Any:
    """``X`` for ``{from: X}`` where X is a name, a list, ``{any: …}`` or ``{role: …}``."""
    is_ref = isinstance(value, dict) and bool({"any", "role"} & set(value))
    return {"from": value} if isinstance(value, str | list) or is_ref else value


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
    """A rule of ``skip_when`` or ``removed_when``: the row matches when a cell of ``field``
    is one of ``in`` (ignoring case and surrounding spaces). With ``if_present: true`` the
    columns may all be missing from an export; the rule then matches nothing."""

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
    prefer_labels: list[str] = Field(default_factory=lambda: list(MOBILE_LABELS))
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
    updated_at_format: str | None = None
    """A strptime format (``"%d.%m.%Y %H:%M"``) for ``updated_at``, instead of inferring the
    form from the file's values (``timestamps.py``)."""
    full_name: Columns | None = None
    company: Columns | None = None
    """The row's organisation: a full name equal to it is an organisation's, kept whole."""
    is_company: Columns | None = None
    """A flag that the row is an organisation (Odoo's ``Is a Company``): its name is kept whole."""
    skip_when: list[SkipRule] = Field(default_factory=list)
    removed_when: list[SkipRule] = Field(default_factory=list)
    """Rows whose contact was removed from the CRM but is still read: a soft delete
    (SuiteCRM's ``deleted = 1``, Salesforce's ``IsDeleted``, a Dynamics contact's ``Inactive``
    state). Such a row is never sent, and its numbers are removed from Kore as a snapshot's
    missing ones are (``changes.removed``), unless another row of the run still holds them."""
    fields: dict[Literal["firstName", "lastName", "salutation"], FieldSpec]
    phone: PhoneSpec
    placeholders: list[str] = Field(default_factory=lambda: list(PLACEHOLDERS))
    description: str = ""

    _normalise = field_validator(
        "id", "updated_at", "full_name", "company", "is_company", mode="before"
    )(_shorthand)

    @property
    def id_columns(self) -> list[str]:
        return names_of(self.id.from_) if self.id else []

    @field_validator("fields", mode="before")
    @classmethod
    def _fields_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _shorthand(v) for k, v in value.items()}
        return value
