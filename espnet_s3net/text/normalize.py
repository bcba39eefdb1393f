"""Per-language transcript normalisation for Common Voice sentences.

Rules (applied in this order):
1. Unicode NFKC (full-width forms, ligatures and compatibility characters folded).
2. Casing: lower case with the language's rules (Turkish and Tatar map ``I`` to
   ``ı`` and ``İ`` to ``i``); Chinese has no case.
3. Punctuation and symbols (Unicode categories P* and S*) become spaces, except an
   apostrophe between two letters in languages that write elisions
   (fr, it: ``l'homme``), which is kept as ``'``.
4. Whitespace is collapsed.

Sentences with digits are dropped (reason ``contains digits``): reading numbers
correctly depends on context (years, ordinals, decimals), and a wrong reading would
put a wrong phone sequence in the reference; the caller records every drop.
"""

import re
import unicodedata
from typing import Optional, Tuple

from espnet_s3net.languages import get_language

_APOSTROPHES = "'\u2019\u02bc\u2018`\u00b4"
_ELISION_LANGS = {"fr", "it"}
_DOTTED_I_LANGS = {"tr", "tt"}
_UNCASED_LANGS = {"zh-CN", "zh-TW"}
_SPACES = re.compile(r"\s+")


def _lower(text: str, locale: str) -> str:
    if locale in _UNCASED_LANGS:
        return text
    if locale in _DOTTED_I_LANGS:
        text = text.replace("I", "ı").replace("İ", "i")
    return text.lower()


def _strip_punctuation(text: str, keep_elision: bool) -> str:
    chars = []
    for i, ch in enumerate(text):
        if ch in _APOSTROPHES:
            inside_word = 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()
            chars.append("'" if keep_elision and inside_word else " ")
        elif unicodedata.category(ch)[0] in "PS":
            chars.append(" ")
        else:
            chars.append(ch)
    return "".join(chars)


def normalize_sentence(sentence: str, locale: str) -> Tuple[Optional[str], Optional[str]]:
    """Normalise one sentence of language ``locale``.

    Returns:
        ``(normalised, None)``, or ``(None, reason)`` when the sentence is dropped
        (``"empty sentence"``, ``"contains digits"``).
    Raises:
        ValueError: unknown ``locale`` (the message lists the supported ones).
    """
    get_language(locale)
    text = unicodedata.normalize("NFKC", sentence)
    if any(unicodedata.category(ch) == "Nd" for ch in text):
        return None, "contains digits"
    text = _lower(text, locale)
    text = _strip_punctuation(text, keep_elision=locale in _ELISION_LANGS)
    text = _SPACES.sub(" ", text).strip()
    if not text:
        return None, "empty sentence"
    return text, None
