"""Country names to ISO regions, from maintained sources rather than a hand list.

Names come from CLDR (through Babel): every territory's name in English, in the languages most
CRM users write in, and in each country's own official languages (``México``, ``Deutschland``,
``Brasil``, ``Côte d'Ivoire``); from ISO 3166 (through pycountry): alpha-2 and alpha-3 codes,
short, official and common names; and from ISO 3166-3 (``pycountry.historic_countries``): the
names of countries whose code was withdrawn, for the one territory that took their place
(``Dahomey`` is BJ, ``Southern Rhodesia`` ZW; ``Netherlands Antilles``, split in three, names
none). Matching ignores case, accents, punctuation, a leading "the" and Saint/St. A name that two
territories share in one language (``Kongo``) names neither. A short list covers former and
colloquial English names that none of these carries (``Swaziland``, ``UK``), among them the
former ISO short names CRM picklists still offer (``Libyan Arab Jamahiriya``); CLDR's variant
forms (``Palestine`` beside ``Palestinian Territories``) would cover some, but Babel does not
ship them.

CRM picklists (Salesforce's State and Country/Territory Picklists, HubSpot's and Zoho's country
options) write ISO 3166's formal forms, and people write them the other way round, so every name
is also known in the forms these rules make of it (``_variants``):

- "X, Republic of" is "Republic of X" (``Korea, Republic of``; ``Congo, the Democratic Republic
  of the``; ``Bahamas, The``), and "X (Y)" is "Y X" (``Virgin Islands (British)``);
- a bracketed qualifier may be left out (``Cocos (Keeling) Islands``, ``Macedonia (FYROM)``), and
  so may a trailing ``SAR`` (``Hong Kong SAR``, ``Macao SAR``) — but only where no other
  territory has a name with the words left: ``Congo (DRC)`` is not read as ``Congo``, nor
  ``Saint Martin (Dutch part)`` as ``Saint Martin``.

A form that two territories share names neither, and no form ever displaces a name.

The index is built once per process, on first use (well under a second). Each language's names
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
_NOT_COUNTRIES = {"EU", "EZ", "QO", "UN", "XA", "XB", "ZZ"}
"""CLDR territories that are no country: unions, the unknown region, and the pseudo-locales' test
regions XA and XB."""
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
    "macau": "MO",  # the Portuguese spelling, common in English
    "palestine": "PS",  # CLDR's short form, which Babel does not ship
    "united states virgin islands": "VI",  # the UN's M49 name
    "palestinian territory": "PS",  # GeoNames and MaxMind, as HubSpot's lists write it
    # ISO 3166-1 short names before a change that kept the code (so ISO 3166-3 has none)
    "Libyan Arab Jamahiriya": "LY",
    "Palestinian Territory, Occupied": "PS",
    "Macedonia, the former Yugoslav Republic of": "MK",
    "Wallis and Futuna Islands": "WF",
    "Bonaire, Saint Eustatius and Saba": "BQ",
}
_PUNCTUATION = re.compile(r"[.,()'’‘`´\"]")
_SPACES = re.compile(r"[\s\-_/]+")
_SAINT = re.compile(r"\bsaint\b")
_COMMA = re.compile(r"^([^,]+),\s*([^,]+)$")
_BRACKET = re.compile(r"\s*\(([^()]*)\)")
_TRAILING_BRACKET = re.compile(r"^(.+?)\s*\(([^()]*)\)\s*$")
_SAR = re.compile(r"^(.+?)\s+sar(?:\s+china)?$")
_KEPT_CODE = "AA"
"""ISO 3166-3's last two letters for "the code was kept" (Byelorussian SSR, BYAA: Belarus)."""


def fold(name: str) -> str:
    """How names are compared: no accents, no case, no punctuation, no leading "the", and
    "Saint" as "St" (ISO writes ``Saint Lucia``, CLDR ``St. Lucia``)."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = _PUNCTUATION.sub("", text.replace("&", " and "))
    text = _SAINT.sub("st", _SPACES.sub(" ", text).strip())
    return text.removeprefix("the ")


@lru_cache(maxsize=4096)
def region_for(country: str) -> str | None:
    """The ISO-2 region a country name or code stands for; None when nothing matches."""
    index, words = _index()
    for key, lossy in _variants(country.strip()):
        region = index.get(key)
        if region and not (lossy and _shared(key, region, words)):
            return region
    return None


def _variants(name: str) -> list[tuple[str, bool]]:
    """A name's folded forms, itself first, each with whether it left words out."""
    forms = [(name, False)]
    for rule in (_turned, _unbracketed):
        forms += [made for form, lossy in forms for made in rule(form, lossy)]
    found = [(fold(form), lossy) for form, lossy in forms]
    found += [(sar[1], True) for key, _ in found if (sar := _SAR.match(key))]
    return [(key, lossy) for key, lossy in dict.fromkeys(found) if key]


def _turned(name: str, lossy: bool) -> list[tuple[str, bool]]:
    """A name turned round: ``Korea, Republic of`` as ``Republic of Korea``, ``Virgin Islands
    (U.S.)`` as ``U.S. Virgin Islands``."""
    turned = _COMMA.match(name) or _TRAILING_BRACKET.match(name)
    return [(f"{turned[2]} {turned[1]}", lossy)] if turned else []


def _unbracketed(name: str, _lossy: bool) -> list[tuple[str, bool]]:
    """A name without its bracketed qualifiers: ``Cocos (Keeling) Islands`` as ``Cocos
    Islands``."""
    plain = _BRACKET.sub("", name)
    return [(plain, True)] if plain != name else []


def _shared(key: str, region: str, words: dict[str, set[str]]) -> bool:
    """Whether another territory has a name with every word of ``key``: then the words a form
    left out may be what told the two apart (``Congo (DRC)``)."""
    regions = set.intersection(*(words.get(w, set()) for w in key.split()))
    return bool(regions - {region})


@cache
def _index() -> tuple[dict[str, str], dict[str, set[str]]]:
    """Every known name and form to its region, and every word of a name to the regions that
    have a name with it."""
    codes = [
        c for c in _territories("en") if len(c) == 2 and c.isalpha() and c not in _NOT_COUNTRIES
    ]
    names: list[tuple[str, str]] = list(_FORMER_AND_COLLOQUIAL.items())
    names += [
        (value, country.alpha_2)
        for country in pycountry.countries
        for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name")
        if (value := getattr(country, attr, None))
    ]
    own = {lang for code in codes for lang in get_official_languages(code, de_facto=True)}
    others = sorted(own - set(_MAJOR_LANGUAGES))
    tiers = [names[: len(_FORMER_AND_COLLOQUIAL)], names[len(_FORMER_AND_COLLOQUIAL) :]]
    tiers += [_names(languages, codes) for languages in (["en"], _MAJOR_LANGUAGES, others)]
    tiers.append(_withdrawn())
    index: dict[str, str] = {}
    for tier in tiers:
        _add(index, _folded(tier))
    words: dict[str, set[str]] = {}
    for key, region in index.items():
        for word in key.split():
            words.setdefault(word, set()).add(region)
    derived: dict[str, set[str]] = {}
    for name, region in (pair for tier in tiers for pair in tier):
        for key, lossy in _variants(name)[1:]:
            if not (lossy and _shared(key, region, words)):
                derived.setdefault(key, set()).add(region)
    _add(index, derived)
    return index, words


def _names(languages: list[str], codes: list[str]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for language in languages:
        names = _territories(language)
        found += [(names[code], code) for code in codes if code in names]
    return found


def _withdrawn() -> list[tuple[str, str]]:
    """ISO 3166-3's withdrawn countries by name, for the one current territory that took each
    one's place (the last two letters of its alpha-4 code; ``HH`` and ``XX`` name none)."""
    found: list[tuple[str, str]] = []
    for country in pycountry.historic_countries:
        successor = country.alpha_4[2:]
        if successor == _KEPT_CODE:
            successor = country.alpha_2
        if pycountry.countries.get(alpha_2=successor):
            found.append((country.name, successor))
    return found


def _folded(names: list[tuple[str, str]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, region in names:
        found.setdefault(fold(name), set()).add(region)
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
