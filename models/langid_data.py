"""langid's sentences: translated manual pages and gettext message catalogues from Debian packages.

scripts/install-system-deps.sh unpacks the packages (its `text_packages` list) into
build/langid-text/root/. Each text keeps the name of its source (a manual page such as `ls.1`,
or a catalogue domain such as `coreutils`); the held-out split is by source, and a source is on
the same side in every language, so a translation of a held-out sentence never reaches training.
"""
from __future__ import annotations

import hashlib
import random
import re
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

TEXT_ROOT = Path(__file__).resolve().parent.parent / "build" / "langid-text" / "root" / "usr" / "share"
# Directory names under man/ and locale/ per label; English pages are man/man[1-8] and English
# messages are the catalogues' msgids.
LOCALES = {"german": ["de"], "french": ["fr"], "spanish": ["es"], "italian": ["it"],
           "portuguese": ["pt", "pt_BR"], "dutch": ["nl"]}
HELD_OUT_SOURCES = 0.2  # fraction of sources (pages, catalogues) kept for evaluation

# Tokens that are code, not language: paths, options, variables, format directives, URLs, mail.
CODE_TOKEN = re.compile(r"[/\\_=<>{}\[\]|$@#~*+^`]|%|://|\d|^-|^\w+\(|\.\w")
FORMAT = re.compile(r"%(\d+\$)?[-+ #0']*(\*|\d+)?(\.(\*|\d+))?(hh|h|ll|l|L|q|j|z|t)?[a-zA-Z%]")
SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n\s*\n|\t")


def source_held_out(source: str, seed: int) -> bool:
    """A stable, seeded coin per source (not Python's hash, which changes per process)."""
    digest = hashlib.sha256(f"{seed}:{source}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < HELD_OUT_SOURCES


def roff_text(source: str) -> str:
    """The running prose of a roff manual page: macros, escapes and code examples removed."""
    out, literal = [], False
    for line in source.splitlines():
        if line.startswith((".nf", ".EX")):
            literal = True  # no-fill blocks are examples and synopses: code, not prose
        elif line.startswith((".fi", ".EE")):
            literal = False
        elif literal or line.startswith(("'", '.\\"', '\\"')):
            continue
        elif line.startswith("."):
            macro, _, rest = line.partition(" ")
            # Italic macros wrap words of prose (placeholders, emphasis); bold ones (.B, .BR)
            # wrap commands and options, which are code. Others (.SH, .TP, .IP) are headings
            # and list items, kept as their own "sentence".
            if macro in (".I", ".IR", ".RI", ".SM"):
                out.append(rest.replace('"', ""))
            elif macro not in (".B", ".BR", ".BI", ".IB", ".RB"):
                out.append("\n\n")
        else:
            out.append(line)
    text = " ".join(out)
    text = re.sub(r"\\fB.*?(\\f[RP]|$)", " ", text)  # inline bold: commands, options, literals
    text = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", text)  # other font changes
    text = re.sub(r"\\\*?(?:\((..)|\[([^]]*)\])", lambda m: glyph(m.group(1) or m.group(2)), text)
    text = re.sub(r"\\[-e]", "-", text)
    return re.sub(r"\\.", "", text)


ACCENTS = {"'": "\u0301", "`": "\u0300", ":": "\u0308", "^": "\u0302", "~": "\u0303", ",": "\u0327"}
GLYPHS = {"ss": "ß", "aq": "'", "Aq": "'", "hy": "-", "oe": "œ", "OE": "Œ", "ae": "æ", "AE": "Æ"}


def glyph(name: str) -> str:
    """A roff special character: accented letters (\\('e is é) matter, the rest is a space.

    French pages write most accents this way; dropped, "particulièrement" would train as
    "particulirement"."""
    if len(name) == 2 and name[0] in ACCENTS and name[1].isalpha():
        return unicodedata.normalize("NFC", name[1] + ACCENTS[name[0]])
    return GLYPHS.get(name, " ")


def mo_messages(path: Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) pairs of a compiled gettext catalogue (the header entry dropped)."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412DE else ">"
    _revision, count, ids_at, strs_at = struct.unpack(order + "4I", data[4:20])
    pairs = []
    for i in range(count):
        id_len, id_off = struct.unpack(order + "2I", data[ids_at + 8 * i:ids_at + 8 * i + 8])
        str_len, str_off = struct.unpack(order + "2I", data[strs_at + 8 * i:strs_at + 8 * i + 8])
        msgid = data[id_off:id_off + id_len].decode("utf-8", "replace").split("\x00")[0]
        msgstr = data[str_off:str_off + str_len].decode("utf-8", "replace").split("\x00")[0]
        if msgid and msgstr:
            pairs.append((msgid.split("\x04")[-1], msgstr))  # drop a msgctxt prefix
    return pairs


def sentences(text: str) -> list[str]:
    """Prose sentences of a text, lower-cased to letters as the server normalises them.

    Code-like tokens are dropped before punctuation is (a path or an option would otherwise leave
    letters that are no language); a sentence that loses more than a third of its tokens that way
    is mostly code and dropped whole.
    """
    out = []
    text = re.sub(r"_(?=\w)|&(?=\w)", "", FORMAT.sub(" % ", text))  # accelerators: _File, &File
    for piece in SENTENCE_END.split(text):
        tokens = piece.split()
        kept = [t for t in tokens if not is_code(t.strip(".,;:!?()\"'«»“”„"))]
        if not kept or len(kept) < len(tokens) * 2 / 3:
            continue
        words = normalise(" ".join(kept)).split()
        if words and any(len(w) > 1 for w in words):
            out.append(" ".join(words))
    return out


def is_code(token: str) -> bool:
    """Paths, options, variables, format directives, URLs; and all-capital tokens (SIGHUP, GNU,
    POSIX), which are names and acronyms shared by every language."""
    return bool(CODE_TOKEN.search(token)) or (len(token) > 1 and token.isupper())


def normalise(text: str) -> str:
    """What handlers.text.normalize_text makes of a text: NFC, lower case, letters, ' and - in words."""
    text = unicodedata.normalize("NFC", text)
    kept = "".join(ch if ch.isalpha() or ch in "'-" else " " for ch in text)
    return " ".join(w for w in (w.strip("'-") for w in kept.lower().split()) if w)


def man_pages(directory: Path) -> dict[str, str]:
    """Page name (e.g. `ls.1`) -> its text, for every page under man[1-8]/ of `directory`."""
    import gzip

    pages = {}
    for path in sorted(directory.glob("man[1-8]/*")):
        if not path.is_file():
            continue
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        source = raw.decode("utf-8", "replace")
        if source.startswith(".so "):
            continue  # a link to another page
        pages[path.name.removesuffix(".gz")] = roff_text(source)
    return pages


def corpus(root: Path = TEXT_ROOT) -> dict[str, list[tuple[str, str]]]:
    """Label -> [(source, sentence)], deduplicated within a label, from the packages unpacked under
    `root` (a parameter: a worker's copy of this module lives in its archive, not the repository)."""
    if not (root / "man").is_dir():
        raise FileNotFoundError(f"{root} is missing: run scripts/install-system-deps.sh (make system-deps)")
    texts: dict[str, list[tuple[str, str]]] = {"english": []}
    for name, text in man_pages(root / "man").items():
        texts["english"].append((f"man:{name}", text))
    english_messages: dict[str, str] = {}
    for label, locales in LOCALES.items():
        texts[label] = []
        for locale in locales:
            for name, text in man_pages(root / "man" / locale).items():
                texts[label].append((f"man:{name}", text))
            for path in sorted((root / "locale" / locale / "LC_MESSAGES").glob("*.mo")):
                for msgid, msgstr in mo_messages(path):
                    texts[label].append((f"mo:{path.stem}", msgstr))
                    english_messages[msgid] = f"mo:{path.stem}"
    texts["english"] += [(source, msgid) for msgid, source in sorted(english_messages.items())]
    out: dict[str, list[tuple[str, str]]] = {}
    for label, items in texts.items():
        seen: set[str] = set()
        out[label] = []
        for source, text in items:
            for sentence in sentences(text):
                if sentence not in seen:
                    seen.add(sentence)
                    out[label].append((source, sentence))
    return out


# --- word lists ---------------------------------------------------------------------------------

DICT_DIR = Path("/usr/share/dict")
WORD_LISTS = {
    "english": "american-english",
    "german": "ngerman",
    "french": "french",
    "spanish": "spanish",
    "italian": "italian",
    "portuguese": "portuguese",
    "dutch": "dutch",
}
LABELS = list(WORD_LISTS)
WORD_PATTERN = re.compile(r"^[^\W\d_]+(?:['-][^\W\d_]+)*$")


def read_words(language: str) -> list[str]:
    path = DICT_DIR / WORD_LISTS[language]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: install the Debian word lists (make system-deps)")
    words = {line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines()}
    return sorted(w for w in words if 2 <= len(w) <= 24 and WORD_PATTERN.match(w))


def is_untranslated(sentence: str, own: set[str], english: set[str]) -> bool:
    """Mostly English words that are not also words of the page's own language.

    Translated pages and catalogues keep some English (untranslated entries, option
    descriptions); taught as Italian or Dutch, they would make English look like those."""
    words = sentence.split()
    foreign = sum(w in english and w not in own for w in words)
    return foreign * 2 >= len(words) and foreign > 0


def clean_corpus(texts: dict[str, list[tuple[str, str]]],
                 vocabularies: dict[str, list[str]]) -> dict[str, list[tuple[str, str]]]:
    """Untranslated English dropped from the other languages; a sentence found under two labels
    (a shared technical term, a name) is kept by neither."""
    english = set(vocabularies["english"])
    labels_of: dict[str, set[str]] = {}
    for label, items in texts.items():
        for _, sentence in items:
            labels_of.setdefault(sentence, set()).add(label)
    out = {}
    for label, items in texts.items():
        own = set(vocabularies[label])
        out[label] = [(source, s) for source, s in items if len(labels_of[s]) == 1
                      and (label == "english" or not is_untranslated(s, own, english))]
    return out


# --- the split ----------------------------------------------------------------------------------

CROPS_PER_LANGUAGE = 13000  # training texts cut from sentences, per language (balanced)
WORDS_PER_LANGUAGE = 3000   # single words from the word lists, per language, for one-word inputs
HELD_OUT_WORDS = 500        # per language
# Words per training crop: requests are mostly short, so short crops are the most common. Held-out
# sentences of 6+ words score ~0.996 with crops of at most 8 words (a GRU's final states carry
# what it read), so longer crops would cost time and not accuracy.
CROP_WORDS = (1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 6, 8)
CROP_CHARS = 120            # an RNN step costs per character: longer crops cost time, not accuracy
BUCKETS = {"1-2 words": (1, 2), "3-5 words": (3, 5), "6+ words": (6, 10**6)}
EVAL_PER_BUCKET = 600       # held-out sentences per language and length bucket (balanced)
SERVED_CHARS = 256          # config/models/langid.yaml max_chars: longer texts are refused


@dataclass
class Split:
    train: list[tuple[str, int]]
    held_out: dict[str, list[tuple[str, int]]]  # bucket name (and "words") -> (text, label index)


def crop(sentence: str, rng: random.Random) -> str:
    words = sentence.split()
    k = min(rng.choice(CROP_WORDS), len(words))
    start = rng.randrange(len(words) - k + 1)
    text = " ".join(words[start:start + k])
    return text if len(text) <= CROP_CHARS else text[:CROP_CHARS].rsplit(" ", 1)[0] or text[:CROP_CHARS]


def bucket(text: str) -> str:
    n = len(text.split())
    return next(name for name, (low, high) in BUCKETS.items() if low <= n <= high)


def split(seed: int) -> Split:
    """Balanced training texts and held-out sets, held out by source (sentences) or by word."""
    vocabularies = {lang: read_words(lang) for lang in LABELS}
    texts = clean_corpus(corpus(), vocabularies)
    rng = random.Random(seed)
    train: list[tuple[str, int]] = []
    held_out: dict[str, list[tuple[str, int]]] = {name: [] for name in [*BUCKETS, "words"]}
    for label, lang in enumerate(LABELS):
        mine = [s for source, s in texts[lang] if not source_held_out(source, seed)]
        theirs = [s for source, s in texts[lang] if source_held_out(source, seed) and len(s) <= SERVED_CHARS]
        train += [(crop(rng.choice(mine), rng), label) for _ in range(CROPS_PER_LANGUAGE)]
        for name in BUCKETS:
            in_bucket = [s for s in theirs if bucket(s) == name]
            held_out[name] += [(s, label) for s in rng.sample(in_bucket, min(EVAL_PER_BUCKET, len(in_bucket)))]
    # Words of one list only: a word in two lists carries no signal.
    seen: dict[str, int] = {}
    for words in vocabularies.values():
        for w in words:
            seen[w] = seen.get(w, 0) + 1
    for label, lang in enumerate(LABELS):
        unique = [w for w in vocabularies[lang] if seen[w] == 1]
        rng.shuffle(unique)
        train += [(w, label) for w in unique[:WORDS_PER_LANGUAGE]]
        held_out["words"] += [(w, label) for w in unique[WORDS_PER_LANGUAGE:WORDS_PER_LANGUAGE + HELD_OUT_WORDS]]
    return Split(train, held_out)


def debian_packages() -> list[str]:
    """The unpacked .deb files (name_version_arch), recorded with the weights they trained."""
    versions = TEXT_ROOT.parent.parent.parent / "versions.txt"
    return versions.read_text().split() if versions.is_file() else []
