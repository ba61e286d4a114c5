"""Sources: where contacts come from. Each yields files (or tables) of plain string rows.

A source is read twice at most: once to fingerprint and sniff it, once to stream its rows.
Nothing holds a whole file in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One record: its cells, the line it starts on, and why it is broken (if it is)."""

    values: list[str]
    line: int
    error: str | None = None


class SourceFile(Protocol):
    """One unit of input that is processed once: a file, remembered by its content hash."""

    @property
    def name(self) -> str: ...

    @property
    def content_hash(self) -> str: ...

    def describe(self) -> str: ...

    def header(self) -> list[str]: ...

    def rows(self) -> Iterator[SourceRow]: ...


class Source(Protocol):
    def discover(self) -> list[SourceFile]: ...
