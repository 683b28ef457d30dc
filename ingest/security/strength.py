"""How strong a configured secret is: placeholders are refused in every mode, weak values in production.

Every mode (:func:`placeholder_problem`): a placeholder (``changeme``, ``<your secret>``, an unexpanded
``${TOKEN}`` anywhere in the value, one repeated character), surrounding whitespace (a copy-and-paste slip:
stripping it silently would send the broker or InfluxDB another password than the one set there), and any
character outside printable ASCII.

Why printable ASCII rather than folding look-alikes: every generator (``secrets``, ``openssl rand``,
``pwgen``, password managers) writes ASCII, while a Cyrillic ``с`` or a zero-width space makes
``сhangeme`` pass any word list, and Unicode has thousands of such look-alikes (UTS #39), more than a small
map can hold; non-ASCII secrets also break between systems that normalise or encode differently (the
broker compares bytes). Placeholders are still compared after NFKC, so a full-width ``ｃｈａｎｇｅｍｅ`` is
named a placeholder rather than just non-ASCII.

Production (:func:`weakness`), on top: a minimum length, no placeholder word inside (``changeme``,
``password``, ``secret``, ``admin``, ``example``, ... compared case-insensitively, punctuation ignored),
and no sign of a made-up value: a repetition of a substring of at most half the length, a run of
consecutive or equal characters (``abcdefg``, ``7654321``, ``aaaaaaa``), too few different characters.
``api.secret_key`` in addition: no whitespace, and a Shannon estimate of at least 4.0 bits per character
(3.0 for hex).

The thresholds leave generated secrets alone. Of a million each of ``token_urlsafe(32)``,
``token_hex(32)``, ``openssl rand -base64 32``, ``token_urlsafe(16)``, ``openssl rand -base64 24``,
``token_hex(8)`` and 20 random letters and digits, 0 to 4 were refused, each for an ``admin`` inside by
chance (generate another); ``tests/unit/test_config.py`` checks thousands on every run. A Shannon floor
of 4.5 bits per character would refuse 0.4 % of ``token_urlsafe(32)`` (43 characters average 4.85) and
every hex key (at most 4.0), hence 4.0 and 3.0. Messages name the problem, never the value.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections import Counter

# compared after folding (NFKC, lower case, only letters and digits): "Change-Me" is "changeme"
PLACEHOLDER_SECRETS = frozenset(
    {
        *("changeme", "changethis", "changeit", "replaceme", "fixme", "todo", "tbd"),
        *("secret", "secretkey", "password", "passwd", "token", "key", "apikey"),
        *("yoursecret", "yourpassword", "yourtoken", "mysecret", "mypassword"),
        *("admin", "root", "dev", "development", "test", "testing", "demo", "example", "default"),
        *("none", "null", "empty", "insecure", "abc", "123", "1234", "12345", "123456", "12345678"),
    }
)
# refused anywhere inside a production secret. Six letters or more, and "admin": a random 43-character
# key contains a given five-letter word (any case) about once in a million keys, a six-letter one in 30
# million, a four-letter one ("test") 30 times in a million.
PLACEHOLDER_WORDS = (
    *("changeme", "changeit", "changethis", "replaceme", "placeholder", "example", "sample"),
    *("password", "passwd", "secret", "apikey", "admin", "default", "insecure", "qwerty", "letmein"),
)
# the whole value: <your secret>, ${TOKEN}, {{ token }} (words inside, not a random password's symbols)
_TEMPLATE = re.compile(r"<[\w\s.,:;/()=-]*>|\$\{[\w\s.:?-]*\}|\{\{[\w\s.|-]*\}\}")
# anywhere: ${API_SECRET_KEY}-2024 (upper case, as variables are named: rare in random symbols)
_VARIABLE = re.compile(r"\$\{[A-Z_][A-Z0-9_]{2,}\}|\{\{\s*[A-Za-z_][\w.]{2,}\s*\}\}")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_HEX = re.compile(r"[0-9a-fA-F]+")

API_KEY_CHARS, API_KEY_HEX_DIGITS = 43, 64  # 32 random bytes, base64url or hex
MIN_SECRET_CHARS = 16  # production: passwords and tokens other than api.secret_key
API_KEY_BITS_PER_CHAR, API_KEY_HEX_BITS_PER_CHAR = 4.0, 3.0
RUN_LIMIT, HEX_RUN_LIMIT = 7, 8  # 16 symbols make runs likelier: 7 in a row is in ~1 of 10^5 hex keys


def _folded(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKC", value).casefold())


def placeholder_problem(value: str) -> str | None:
    """What makes ``value`` unusable in every mode (None: nothing); never quotes the value."""
    stripped = value.strip()
    folded = _folded(stripped)
    if (
        folded in PLACEHOLDER_SECRETS
        or len(set(folded)) <= 1  # "", "xxxxxxxx", "********", "0000"
        or _TEMPLATE.fullmatch(stripped) is not None
        or _VARIABLE.search(stripped) is not None
    ):
        return "placeholder value"
    if stripped != value:
        return "leading or trailing whitespace"
    if _PRINTABLE_ASCII.fullmatch(value) is None:
        return "characters outside printable ASCII (look-alike letters, invisible characters)"
    return None


def is_placeholder(value: str) -> bool:
    return placeholder_problem(value) == "placeholder value"


def weakness(value: str, *, api_key: bool = False) -> str | None:
    """Why ``value`` is too weak for production (None: it plausibly is random); never quotes it.

    Expects a value without a :func:`placeholder_problem`.
    """
    hex_only = _HEX.fullmatch(value) is not None
    if api_key:
        need, unit = (API_KEY_HEX_DIGITS, "hex digits") if hex_only else (API_KEY_CHARS, "characters")
    else:
        need, unit = MIN_SECRET_CHARS, "characters"
    if len(value) < need:
        return f"too short ({len(value)} {unit})"
    if api_key and any(char.isspace() for char in value):
        return "not a generated key (it contains spaces)"
    folded = _folded(value)
    if any(word in folded for word in PLACEHOLDER_WORDS):
        return "contains a placeholder word (changeme, password, secret, admin, example ...)"
    pattern = _pattern(value.casefold(), hex_only=hex_only)
    if pattern is not None:
        return f"not random ({pattern})"
    if api_key:
        bits, floor = shannon_bits(value), API_KEY_HEX_BITS_PER_CHAR if hex_only else API_KEY_BITS_PER_CHAR
        if bits < floor:
            return f"not random (about {bits:.1f} bits per character, at least {floor:.0f} needed)"
    return None


def _pattern(value: str, *, hex_only: bool) -> str | None:
    period = smallest_period(value)
    if period <= len(value) // 2:
        return f"repeats a pattern of {period} characters"
    run = longest_run(value)
    if run >= (HEX_RUN_LIMIT if hex_only else RUN_LIMIT):
        return f"a run of {run} consecutive characters, like abcd, 4321 or aaaa"
    distinct, need = len(set(value)), min(8, max(5, math.ceil(len(value) / 4)))
    if distinct < need:
        return f"only {distinct} different characters"
    return None


def smallest_period(value: str) -> int:
    """The smallest p with value[i] == value[i + p] throughout (len(value) when none is shorter)."""
    border = [0] * len(value)  # Knuth-Morris-Pratt: the longest proper prefix that is also a suffix
    for index in range(1, len(value)):
        length = border[index - 1]
        while length and value[index] != value[length]:
            length = border[length - 1]
        border[index] = length + (value[index] == value[length])
    return len(value) - (border[-1] if value else 0)


def longest_run(value: str) -> int:
    """The longest stretch of characters each one code point above the one before, or each below, or
    each the same: abcdef, 654321, aaaaaa."""
    longest = current = min(len(value), 1)
    step: int | None = None
    for before, after in itertools.pairwise(value):
        difference = ord(after) - ord(before)
        if difference in (-1, 0, 1):
            current = current + 1 if difference == step else 2
            step = difference
        else:
            current, step = 1, None
        longest = max(longest, current)
    return longest


def shannon_bits(value: str) -> float:
    """Shannon entropy of the character frequencies, in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values()) if value else 0.0
