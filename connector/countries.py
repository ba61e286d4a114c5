"""Country names to ISO regions, from maintained sources rather than a hand list.

Names come from CLDR (through Babel): every territory's name in English, in the languages most
CRM users write in, and in each country's own official languages (``México``, ``Deutschland``,
``Brasil``, ``Côte d'Ivoire``); and from ISO 3166 (through pycountry): alpha-2 and alpha-3 codes,
short, official and common names. Matching ignores case, accents, punctuation and a leading
"the". A name that two territories share in one language (``Kongo``) names neither. A short list
covers former and colloquial English names that neither source carries (``Swaziland``, ``UK``).

The index is built once per process, on first use (about half a second). Each language's names
are read from Babel's own CLDR file and the rest of that file is let go at once: holding every
locale Babel loads would cost the process some 80 MiB.
"""

from __future__ import annotations

import pickle
import re
import unicodedata
from functools import cache, lru_cache

import pycountry
from babel.core import get_global
from babel.languages import get_official_languages
from babel.localedata import exists, resolve_locale_filename

_MAJOR_LANGUAGES = [
    "en",
    "es",
    "fr",
    "de",
    "pt",
    "it",
    "nl",
    "sv",
    "da",
    "nb",
    "fi",
    "pl",
    "cs",
    "sk",
    "ru",
    "uk",
    "tr",
    "ja",
    "zh",
    "zh_Hant",
    "ko",
    "ar",
    "he",
    "hi",
    "id",
    "ms",
    "th",
    "vi",
    "ro",
    "hu",
    "el",
    "ca",
    "hr",
    "sl",
    "bg",
    "sr",
    "lt",
    "lv",
    "et",
]
_NOT_COUNTRIES = {"EU", "EZ", "QO", "UN", "ZZ"}
_FORMER_AND_COLLOQUIAL = {
    "uk": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "great britain": "GB",
    "britain": "GB",
    "america": "US",
    "united states of america": "US",
    "holland": "NL",
    "swaziland": "SZ",
    "turkey": "TR",
    "ivory coast": "CI",
    "cape verde": "CV",
    "burma": "MM",
    "macedonia": "MK",
    "czech republic": "CZ",
    "east timor": "TL",
    "zaire": "CD",
    "korea": "KR",
    "uae": "AE",
    "vatican": "VA",
}
_PUNCTUATION = re.compile(r"[.,()'’‘`´\"]")
_SPACES = re.compile(r"[\s\-_/]+")


def fold(name: str) -> str:
    """How names are compared: no accents, no case, no punctuation, no leading "the"."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = _PUNCTUATION.sub("", text.replace("&", " and "))
    text = _SPACES.sub(" ", text).strip()
    return text.removeprefix("the ")


@lru_cache(maxsize=4096)
def region_for(country: str) -> str | None:
    """The ISO-2 region a country name or code stands for; None when nothing matches."""
    key = fold(country)
    return _index().get(key) if key else None


@cache
def _index() -> dict[str, str]:
    codes = [
        c for c in _territories("en") if len(c) == 2 and c.isalpha() and c not in _NOT_COUNTRIES
    ]
    index: dict[str, str] = dict(_FORMER_AND_COLLOQUIAL)
    iso: dict[str, set[str]] = {}
    for country in pycountry.countries:
        for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                iso.setdefault(fold(value), set()).add(country.alpha_2)
    _add(index, iso)
    own = {lang for code in codes for lang in get_official_languages(code, de_facto=True)}
    others = sorted(own - set(_MAJOR_LANGUAGES))
    for languages in (["en"], _MAJOR_LANGUAGES, others):
        _add(index, _names(languages, codes))
    return index


def _names(languages: list[str], codes: list[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for language in languages:
        names = _territories(language)
        for code in codes:
            if code in names:
                found.setdefault(fold(names[code]), set()).add(code)
    return found


def _territories(language: str) -> dict[str, str]:
    """A language's territory names, straight from Babel's data files (its own over those it
    inherits, as Babel merges them: ``nb`` from ``no``), nothing else kept."""
    if language == "root" or not exists(language):
        return {}
    parent = get_global("parent_exceptions").get(language)
    if not parent and "_" in language:
        parent = language.rsplit("_", 1)[0]
    with open(resolve_locale_filename(language), "rb") as handle:
        data = pickle.load(handle)  # noqa: S301 - Babel's own CLDR data, as Babel reads it
    own = {str(k): str(v) for k, v in data.get("territories", {}).items()}
    return _territories(parent) | own if parent else own


def _add(index: dict[str, str], tier: dict[str, set[str]]) -> None:
    """Names of one tier that are not taken yet; a name two territories share names neither."""
    for name, regions in tier.items():
        if name and name not in index and len(regions) == 1:
            index[name] = next(iter(regions))
