"""Which encoding a CSV export is written in, and how sure that is.

The rule (docs/configuration.md, "Encodings"): a BOM decides; else the declared
``source.encoding``; else NUL bytes mean UTF-16 or UTF-32 without a BOM; else a file that is
valid UTF-8 from end to end is UTF-8; else the encoding is detected. Only the last is a guess:
``Detection.confidence`` is 1.0 for the others. ``Scan`` settles it in the one streamed pass
that hashes the file, and only an encoding that decodes all of the file is ever chosen.

Detection ranks the legacy code pages exports are written in (``CANDIDATES``) by how their
readings of the file's non-ASCII lines look. charset-normalizer measures each reading's chaos
and coherence (``from_bytes``, one code page at a time: left to itself it skips whole families
once a Latin code page reads a short file passably, and never tries cp1251 on a one-row Russian
export). A short export gives chaos too little text to tell one Latin code page from another,
or Cyrillic read as cp1252 (``Äìèòðèé``) from Cyrillic, so the words of each reading are judged
as well (``_word``): a word mixing scripts, cased oddly (``JŸrgen``, ``ЕллЬдб``), holding a
symbol or a control character (``£ukasz``), letters no one language's alphabet has together
(``Gülþen``), a spelling no language has (``Espańa``) or an ideograph rare in the encoding's
national standard is odd. A reading's badness is its chaos plus its share of odd words (and a
penalty when its names in a cased script are mostly not capitalised); its rank adds a cost per
odd word, per language past the first its words need, and for a rarer code page, and takes off
a little for coherence. When even the best reading is unreadable (half its words odd), the file
is read as Latin-1, which keeps every byte as it is, as it was before detection.

``confidence`` is 1 - the winner's badness (charset-normalizer's ``legacy.detect`` derives its
confidence as 1 - chaos), times the winner's odds against the runner-up, the best reading that
differs from the winner's: e^(10 x lead) to 1, so a tie is 0.5 and a lead of 0.22 is 0.9. Below
``CONFIDENT`` a run and ``check`` warn, naming both readings of one value, and ``init`` pins
no encoding.
"""

from __future__ import annotations

import codecs
import math
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, reduce
from itertools import combinations

from charset_normalizer import from_bytes

CONFIDENT = 0.9
"""The confidence at which a detected encoding is taken without a word. Measured on the 882
exports made of every choice of 1 to 6 rows of the 14 code pages' exports in
tests/test_encodings.py: 36 readings came out wrong, none above 0.73, which is what the lead of
a commoner code page alone gives (``_PRIOR``: cp1252 over cp1257 when one row reads as names in
both); 0.9 asks for evidence on top (a lead of 0.22: a word or two that read oddly in the
runner-up only). 125 of the 846 right readings fall below it, nearly all of one to three rows of
a Latin code page; of the six-row exports 12 of 14 are above it, as are exports of 50 rows or
more in cp1252, cp1250, cp1251 and cp1254 (0.95 to 1.0). A warning too many costs a line of
config; a wrong encoding pinned sends garbled names to Kore without a word."""

_TIERS = (
    ("cp1252", "latin-1"),
    (
        "cp1250",
        "cp1251",
        "cp1253",
        "cp1254",
        "cp1257",
        "cp1258",
        "cp1255",
        "cp1256",
        "cp874",
        "shift_jis",
        "cp932",
        "gb18030",
        "big5",
        "cp950",
        "euc_kr",
        "cp949",
        "euc_jp",
    ),
    ("mac_roman", "koi8_r", "koi8_u", "mac_cyrillic", "mac_greek", "mac_latin2", "mac_turkish"),
    (
        "iso8859_2",
        "iso8859_5",
        "iso8859_7",
        "iso8859_8",
        "iso8859_9",
        "iso8859_13",
        "iso8859_15",
        "cp437",
        "cp850",
        "cp852",
        "cp866",
    ),
)
"""The code pages detection chooses from, commonest first: Windows-1252 and Latin-1, which
most legacy exports are in (shared/crm-exports.md); the Windows code page of each other locale
and the CJK national encodings; the Mac and KOI8 pages; the ISO 8859 and DOS pages older
software writes. All are ASCII-compatible, as a CSV whose delimiters are commas must be.
Latin-1 reads any bytes, so there is always an answer."""
CANDIDATES = tuple(name for tier in _TIERS for name in tier)
_PRIOR = {name: (0.0, 0.1, 0.15, 0.2)[i] for i, tier in enumerate(_TIERS) for name in tier}
"""What a rarer tier costs a reading: the first of two that read a file alike wins anyway, and
of two that read it about as well the commoner. Western names that cp1250 reads as names too
(``Lefčvre``, ``Sřren``) stay cp1252, if only as a guess; cp1250's ``Zając`` wins over ISO
8859-2's ``Zajšc`` beside Czech names."""

MULTIBYTE = ("shift_jis", "cp932", "gb18030", "big5", "cp950", "euc_kr", "cp949", "euc_jp")
"""Candidates a file may fail to decode anywhere: ``Scan`` decodes the whole file with each.
A single-byte code page fails only on the bytes it leaves undefined, which ``Scan`` records."""

_ASCII = bytes(range(128))
_SAMPLE = 256 << 10
"""Bytes of non-ASCII lines detection looks at, taken from across the whole file."""
_PER_CHUNK = 32 << 10
_LONGEST_LINE = 16 << 10
_WORDS = 2000
"""Distinct non-ASCII words whose shapes are judged (enough for a verdict, quick to judge)."""
_STEEPNESS = 10.0
"""How fast a lead over the runner-up turns into odds: e^(10 x lead) to 1."""
_COHERENCE = 0.25
_ODD_WORD = 0.15
_COUNTED = 10
"""Each odd word costs a reading ``_ODD_WORD`` on top of its share, up to ``_COUNTED`` of them:
the words two readings read alike tell nothing, so in a short file one ``¶ννα`` beside
``Άννα`` must count for more than its share of thirteen words; in a long file the shares
decide."""
_UNREADABLE = 0.5
"""A badness at which no candidate reads the file as text: half its words odd, or as messy."""
_BIG5_CHAOS = 0.2
"""Chaos below this does not count against a Big5 reading: charset-normalizer's common
ideographs (its ``CjkUncommonPlugin``) are simplified Chinese, Japanese and Korean ones, which
gives traditional Chinese names a chaos of 0.15; 0.2 is its own default for a code page
unsuited. The word rules, which know Big5's common level, judge the characters instead."""
_CELL = re.compile(rb"[^,;\t\r\n]*[\x80-\xff][^,;\t\r\n]*")
_WORD = re.compile(r"[^\s,;\"()\[\]/\\|0-9!?.:+=<>_*&%$#@-]+")
"""A word: what lies between white space, digits and ASCII punctuation (an apostrophe is kept:
``O'Brien`` is one name)."""
_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK", "HEBREW", "ARABIC", "THAI", "HANGUL")
_CJK = ("CJK", "HIRAGANA", "KATAKANA", "HALFWIDTH KATAKANA", "IDEOGRAPHIC")
_NAME_PUNCTUATION = frozenset("·")
"""Punctuation that is not a dash, quote or bracket but may sit in a word: ``Gal·la``; and
Spanish ``¡ ¿`` may open one."""
_WORD_PUNCTUATION = frozenset({"Pd", "Pi", "Pf", "Ps", "Pe"})

_VIETNAMESE = "àáâãèéêìíòóôõùúýăđĩũơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ"
_ALPHABETS = {
    "Albanian": "çë",
    "Catalan": "àçèéíïòóúü",
    "Croatian": "čćđšž",
    "Czech": "áčďéěíňóřšťúůýž",
    "Danish": "åæøé",
    "Dutch": "áèéëïóöüú",
    "Estonian": "äõöüšž",
    "Finnish": "äåöšž",
    "French": "àâæçèéêëîïôœùûüÿ",
    "German": "äöüß",
    "Hungarian": "áéíóöőúüű",
    "Icelandic": "áæðéíóöúýþ",
    "Italian": "àèéìíîòóùú",
    "Latvian": "āčēģīķļņšūž",
    "Lithuanian": "ąčęėįšūųž",
    "Polish": "ąćęłńóśźż",
    "Portuguese": "àáâãçéêíóôõú",
    "Romanian": "ăâîșşțţ",
    "Slovak": "áäčďéíĺľňóôŕšťúýž",
    "Slovene": "čšž",
    "Spanish": "áéíñóúü",
    "Swedish": "åäöé",
    "Turkish": "âçğıîöşûü",
    "Vietnamese": _VIETNAMESE,
    "Russian": "ё",
    "Ukrainian": "ґєії",
    "Belarusian": "ёіў",
    "Serbian": "ђјљњћџ",
    "Macedonian": "ѓѕјљњќџ",
    "Kazakh": "әғіқңөұүһ",
}
"""The letters of each language the candidate code pages are made for, past the ones its
script's languages share (the ASCII letters; Cyrillic ``а``-``я``): from their alphabets, not
their frequencies (charset-normalizer keeps only each language's 26 commonest letters, which
leaves out Polish ``ś`` and Czech ``ů``). A Latin letter outside them all is odd."""
_MISSPELT = re.compile(
    r"^[ьъы]|[аеёиоуыэюяьъй][ьъ]|ς\w|[ךםןףץ][א-ת]|[ćńśź][aeiouyąęó]|ă[aeo]|ơ[ae]"
)
"""Spellings no word has: a Cyrillic word starting with ``ь``, ``ъ`` or ``ы``, or a soft or
hard sign after a vowel or another sign; Greek final ``ς`` or a Hebrew final letter inside a
word; Polish ``ć ń ś ź`` before a vowel (written ``ci ni si zi``: ``Espańa`` is Spanish read
as cp1250); ``ă`` before ``a e o`` or ``ơ`` before ``a e`` (in Vietnamese and Romanian alike:
``Magalhăes`` is Portuguese read as cp1258)."""
_NAMES = tuple(_ALPHABETS)
_LANGUAGE_COST = 0.1
_MOST_LANGUAGES = 6
_LANGUAGE_BITS = {
    letter: sum(1 << i for i, letters in enumerate(_ALPHABETS.values()) if letter in letters)
    for letter in set("".join(_ALPHABETS.values()))
}
_ALL_LANGUAGES = (1 << len(_ALPHABETS)) - 1


@dataclass(frozen=True)
class Detection:
    """How a file is decoded: the encoding, how sure that is (1.0 unless it was detected), the
    runner-up that reads the file differently, and one value that the two read differently,
    as each reads it (control characters and all: escape them before printing)."""

    encoding: str
    confidence: float = 1.0
    runner_up: str | None = None
    sample: str | None = None
    runner_up_sample: str | None = None
    stray_line: int | None = None
    """For a UTF-8 file with stray bytes of another code page (``STRAY``): the first line that
    holds one. Those bytes are read as cp1252, each line's UTF-8 as UTF-8."""

    @property
    def confident(self) -> bool:
        return self.confidence >= CONFIDENT

    @property
    def errors(self) -> str:
        """The ``errors`` handler to decode the file with (``open(..., errors=…)``)."""
        return STRAY if self.stray_line is not None else "strict"


STRAY = "kore-connector-stray-cp1252"
"""A decoding error handler: a byte that is not UTF-8 is read as cp1252 (Latin-1 where cp1252
has no character). A UTF-8 export with a few bytes typed in another code page (a cell pasted
from an old spreadsheet) is UTF-8 in every other cell: reading it all as a legacy code page
would garble every name that the UTF-8 writes correctly."""


def _stray_cp1252(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(_as_cp1252(byte) for byte in bad), exc.end


def _as_cp1252(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)


codecs.register_error(STRAY, _stray_cp1252)


class Scan:
    """One streamed pass over a file's bytes, chunk by chunk: which encodings decode all of it.

    With a ``declared`` encoding (configured, a BOM's, or a wide one) only that is decoded;
    ``failed`` then says on which line it failed. Otherwise UTF-8 and every ``MULTIBYTE``
    candidate are decoded (a chunk of ASCII only is the same in all of them and skipped), the
    high bytes present are recorded for the single-byte ones, and the lines holding non-ASCII
    bytes are sampled for detection."""

    def __init__(self, declared: str | None) -> None:
        self._declared = declared
        names = [declared] if declared else ["utf-8", *MULTIBYTE]
        self._decoders = {name: codecs.getincrementaldecoder(name)() for name in names}
        self.failed: dict[str, int] = {}
        self._lines = 0
        self._seen: set[int] = set()
        self._known = _ASCII
        self._sample = None if declared else _Sample()

    def feed(self, chunk: bytes) -> None:
        plain = chunk.isascii()
        for name, decoder in self._decoders.items():
            if name in self.failed or (plain and name != self._declared and not _pending(decoder)):
                continue
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                self.failed[name] = self._lines + chunk.count(b"\n", 0, exc.start) + 1
        self._lines += chunk.count(b"\n")
        if self._sample is None:
            return
        new = chunk.translate(None, self._known)
        if new:
            self._seen.update(new)
            self._known = _ASCII + bytes(sorted(self._seen))
        self._sample.add(chunk)

    def close(self) -> None:
        """The end of the file: an encoding left in the middle of a character fails there."""
        for name, decoder in self._decoders.items():
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.failed.setdefault(name, self._lines + 1)
        if self._sample is not None:
            self._sample.add(b"\n")

    def decodes(self, name: str) -> bool:
        """Whether ``name`` decodes every byte the pass saw."""
        if name in self._decoders:
            return name not in self.failed
        return self._seen.isdisjoint(_undefined(name))

    def detection(self) -> Detection:
        """The declared encoding; else UTF-8 if it decoded the whole file; else a detection."""
        if self._declared:
            return Detection(self._declared)
        if self.decodes("utf-8"):
            return Detection("utf-8")
        assert self._sample is not None
        sample = self._sample.bytes()
        if _mostly_utf8(sample):
            return Detection("utf-8", stray_line=self.failed["utf-8"])
        return detect(sample, self.decodes)


def _mostly_utf8(sample: bytes) -> bool:
    """Whether a file that is not valid UTF-8 throughout is UTF-8 with stray bytes: at least as
    many of its non-ASCII lines are valid UTF-8 as are not. A legacy code page's text is almost
    never valid UTF-8 by chance (it would take sequences like ``Ã©`` in a name), so a file of
    cp1252 names has none such lines."""
    valid = invalid = 0
    for line in sample.splitlines():
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            invalid += 1
        else:
            valid += 1
    return valid > 0 and valid >= invalid


class _Sample:
    """Whole lines holding non-ASCII bytes, up to ``_PER_CHUNK`` from each chunk and
    ``_SAMPLE`` in all, spread over the file: past the budget, every other chunk's lines are
    dropped and from then on only every other chunk is sampled. Lines are never cut, so a
    multi-byte character is never split (a line break is never part of one in a candidate)."""

    def __init__(self) -> None:
        self._pieces: list[tuple[int, bytes]] = []
        self._size = 0
        self._stride = 1
        self._chunk = 0
        self._carry = b""
        self._in_long_line = False

    def add(self, chunk: bytes) -> None:
        body = self._carry + chunk
        if self._in_long_line:
            start = body.find(b"\n") + 1
            if not start:
                self._carry = b""
                return
            body, self._in_long_line = body[start:], False
        end = body.rfind(b"\n") + 1
        self._carry = body[end:]
        if len(self._carry) > _LONGEST_LINE:
            self._carry, self._in_long_line = b"", True
        index, self._chunk = self._chunk, self._chunk + 1
        if index % self._stride or body[:end].isascii():
            return
        taken, size = [], 0
        for line in body[:end].split(b"\n"):
            if len(line) < _LONGEST_LINE and not line.isascii():
                taken.append(line + b"\n")
                size += len(line) + 1
                if size >= _PER_CHUNK:
                    break
        self._pieces.append((index, b"".join(taken)))
        self._size += size
        while self._size > _SAMPLE:
            self._stride *= 2
            self._pieces = [(i, p) for i, p in self._pieces if i % self._stride == 0]
            self._size = sum(len(p) for _, p in self._pieces)

    def bytes(self) -> bytes:
        return b"".join(piece for _, piece in self._pieces)


def _pending(decoder: codecs.IncrementalDecoder) -> bool:
    """Whether a decoder holds the first bytes of a character from the chunk before."""
    return bool(decoder.getstate()[0])


@cache
def _undefined(name: str) -> frozenset[int]:
    """The bytes a single-byte code page has no character for."""
    undefined = set()
    for byte in range(128, 256):
        try:
            bytes([byte]).decode(name)
        except UnicodeDecodeError:
            undefined.add(byte)
    return frozenset(undefined)


@dataclass(frozen=True)
class _Reading:
    """One candidate's reading of the sample: charset-normalizer's chaos and coherence, and
    what its words look like (``_Words``)."""

    encoding: str
    chaos: float
    coherence: float
    words: _Words

    @property
    def badness(self) -> float:
        return min(1.0, self.chaos + self.words.oddness)

    @property
    def rank(self) -> float:
        """Lower is likelier: badness, plus ``_ODD_WORD`` for each odd word (up to
        ``_COUNTED``), ``_LANGUAGE_COST`` for each language past the first that its words need
        and the code page's ``_PRIOR``, less a quarter of the coherence."""
        words = self.words
        extra = _LANGUAGE_COST * (words.languages - 1) if words.languages else 0.0
        extra += _ODD_WORD * min(words.odd, _COUNTED) + _PRIOR[self.encoding]
        return self.badness + extra - _COHERENCE * self.coherence


@dataclass(frozen=True)
class _Words:
    """A reading's distinct non-ASCII words: how many, how many odd, the share of its cased
    words that are capitalised, and how many languages' alphabets they need (0: none needs
    a language's own letters)."""

    count: int
    odd: int
    capitalised: float
    languages: int

    @property
    def oddness(self) -> float:
        """The share of odd words, plus a penalty when fewer than half of the words in a cased
        script are capitalised (names are)."""
        if not self.count:
            return 0.0
        return self.odd / self.count + max(0.0, 0.5 - self.capitalised)


def detect(sample: bytes, decodes: Callable[[str], bool]) -> Detection:
    """The candidate whose reading of ``sample`` (a file's non-ASCII lines) looks most like
    text, among those ``decodes`` says read the whole file; see the module's docstring. When
    even that reading is ``_UNREADABLE``, Latin-1, which keeps every byte as it is (a reading a
    person can undo), and the best reading is its runner-up. With no sample (every non-ASCII
    line too long to sample), the commonest that reads the file, at confidence 0."""
    if not sample:
        return Detection(next(name for name in CANDIDATES if decodes(name)), 0.0)
    readings: dict[str, _Reading] = {}
    for name in CANDIDATES:
        if not decodes(name):
            continue
        try:
            text = sample.decode(name)
        except UnicodeDecodeError:
            continue
        key = unicodedata.normalize("NFC", text)
        if key not in readings:
            readings[key] = _read(name, sample, key)
    ranked = sorted(readings.values(), key=lambda r: r.rank)
    best = ranked[0]
    confidence = 1.0 - best.badness
    if best.badness >= _UNREADABLE:
        kept = readings[unicodedata.normalize("NFC", sample.decode("latin-1"))]
        if kept is not best:
            ours, theirs = _differing_cell(sample, kept, best)
            return Detection(kept.encoding, round(confidence, 2), best.encoding, ours, theirs)
    if len(ranked) == 1:
        return Detection(best.encoding, round(confidence, 2), sample=_first_cell(sample, best))
    runner = ranked[1]
    confidence /= 1.0 + math.exp(-_STEEPNESS * (runner.rank - best.rank))
    ours, theirs = _differing_cell(sample, best, runner)
    return Detection(best.encoding, round(confidence, 2), runner.encoding, ours, theirs)


def _read(name: str, sample: bytes, text: str) -> _Reading:
    found = from_bytes(
        sample,
        cp_isolation=[name],
        steps=1,
        chunk_size=max(len(sample), 1),
        threshold=1.0,
        preemptive_behaviour=False,
        enable_fallback=False,
    ).best()
    chaos = found.chaos if found is not None else 1.0
    if name in ("big5", "cp950") and chaos < _BIG5_CHAOS:
        chaos = 0.0
    coherence = found.coherence if found is not None else 0.0
    return _Reading(name, chaos, coherence, _words(text, _COMMON.get(name)))


def _words(text: str, common: Callable[[str], bool] | None) -> _Words:
    """Judges the first ``_WORDS`` distinct non-ASCII words of a reading (``_word``)."""
    every = dict.fromkeys(_WORD.findall(text))
    words = [w for w in every if not w.isascii() and any(c.isalpha() for c in w)][:_WORDS]
    odd = cased = capitalised = 0
    fits: Counter[int] = Counter()
    for word in words:
        verdict = _word(word, common)
        if verdict is None:
            odd += 1
            continue
        if verdict:
            fits[verdict] += 1
        first = next(c for c in word if c.isalpha())
        if first.isupper() or first.islower():
            cased += 1
            capitalised += first.isupper()
    return _Words(len(words), odd, capitalised / cased if cased else 1.0, _languages(fits))


def _languages(fits: Counter[int]) -> int:
    """How many languages' alphabets it takes to explain every word, counting up to
    ``_MOST_LANGUAGES`` + 1 (``fits`` holds the set of languages each word fits; a language
    that explains only words another explains too is never needed). An export is mostly from
    one country or a few: Turkish read as cp1257 needs Polish, Estonian and Latvian letters,
    Western names read as cp1258 need Vietnamese for ``Magalhăes``."""
    if not fits:
        return 0
    masks = list(fits)
    every = (1 << len(masks)) - 1
    sets = {sum(1 << j for j, m in enumerate(masks) if m >> i & 1) for i in range(len(_NAMES))}
    explains = [e for e in sets if e and not any(e != f and e & f == e for f in sets)]
    for size in range(1, _MOST_LANGUAGES + 1):
        for chosen in combinations(explains, size):
            if reduce(operator.or_, chosen) == every:
                return size
    return _MOST_LANGUAGES + 1


def _word(word: str, common: Callable[[str], bool] | None) -> int | None:
    """None for an odd word; else the languages whose alphabets have all its letters past the
    shared ones (a bit per language of ``_ALPHABETS``), or 0 for a word with none. ``İ`` counts
    as the dotless i (its lower case is ``i`` and a combining dot; both are Turkish only). In
    a CJK encoding's reading an ideograph or a Hangul syllable must be ``common``."""
    if _MISSPELT.search(word.lower()):
        return None
    scripts: set[str] = set()
    marks = letters = 0
    shape = ""
    languages = _ALL_LANGUAGES
    for c in word:
        kind = unicodedata.category(c)
        if kind[0] == "M":
            if not letters:
                return None
            marks += 1
            scripts.add(_script(c))
            continue
        if kind[0] != "L":
            if c.isascii() or c in _NAME_PUNCTUATION or kind in _WORD_PUNCTUATION:
                continue
            if c in "¡¿" and not letters:
                continue
            return None
        letters += 1
        script = _script(c)
        scripts.add(script)
        if c.isupper() or c.islower():
            shape += "U" if c.isupper() else "l"
        if script == "LATIN" and not c.isascii():
            languages &= _LANGUAGE_BITS.get("ı" if c == "İ" else c.lower(), 0)
        elif script == "CYRILLIC":
            languages &= _LANGUAGE_BITS.get(c.lower(), _ALL_LANGUAGES)
        elif common and _ideographic(c, script) and not common(c):
            return None
    scripts.discard("OTHER")
    if len(scripts) > 1 or marks * 2 > letters or not _cased_well(shape) or not languages:
        return None
    return 0 if languages == _ALL_LANGUAGES else languages


def _ideographic(c: str, script: str) -> bool:
    return script == "HANGUL" or "IDEOGRAPH" in unicodedata.name(c, "")


def _gb2312(c: str) -> bool:
    return _encoded(c, "gb2312") is not None


def _big5_level_1(c: str) -> bool:
    found = _encoded(c, "big5")
    return found is not None and found < b"\xc9"


def _jis_level_1(c: str) -> bool:
    found = _encoded(c, "shift_jis")
    return found is not None and len(found) == 2 and found < b"\x98\x9f"


def _hangul(c: str) -> bool:
    return _script(c) == "HANGUL" and _encoded(c, "euc_kr") is not None


_COMMON: dict[str, Callable[[str], bool]] = {
    "shift_jis": _jis_level_1,
    "cp932": _jis_level_1,
    "euc_jp": _jis_level_1,
    "gb18030": _gb2312,
    "big5": _big5_level_1,
    "cp950": _big5_level_1,
    "euc_kr": _hangul,
    "cp949": _hangul,
}
"""Which ideographs and Hangul syllables are common in a CJK encoding's reading: those of its
national standard's first level (GB 2312, Big5 level 1, JIS X 0208 level 1), and for Korean the
2,350 Hangul syllables of KS X 1001 but no Hanja (Korean names are written in Hangul). Names
are written with them; a CJK encoding misread gives rare ones (``懢``)."""


def _encoded(c: str, name: str) -> bytes | None:
    try:
        return c.encode(name)
    except UnicodeEncodeError:
        return None


def _cased_well(shape: str) -> bool:
    """All lower, all upper, or capitalised (``Jürgen``, not ``JŸrgen`` or ``ЕллЬдб``)."""
    return "U" not in shape[1:] or "l" not in shape


def _script(c: str) -> str:
    name = unicodedata.name(c, "")
    for script in _SCRIPTS:
        if name.startswith(script):
            return script
    return "CJK" if name.startswith(_CJK) else "OTHER"


def _cells(sample: bytes) -> list[bytes]:
    """The sample's non-ASCII cells (split at every delimiter: a candidate's multi-byte
    characters never hold a comma, semicolon or tab byte)."""
    return [cell.strip(b' "') for cell in _CELL.findall(sample)]


def _first_cell(sample: bytes, reading: _Reading) -> str | None:
    cells = _cells(sample)
    return cells[0].decode(reading.encoding, errors="replace") if cells else None


def _differing_cell(
    sample: bytes, ours: _Reading, theirs: _Reading
) -> tuple[str | None, str | None]:
    """The first non-ASCII cell the two readings read differently, as each reads it."""
    for cell in _cells(sample):
        mine = cell.decode(ours.encoding, errors="replace")
        other = cell.decode(theirs.encoding, errors="replace")
        if unicodedata.normalize("NFC", mine) != unicodedata.normalize("NFC", other):
            return mine, other
    return None, None
