"""Real words of a language, taken from the Unicode CLDR data shipped with Babel.

Source: the CLDR locale data of :mod:`babel` (``babel.Locale.parse(babel_locale)``):
territory names, language names, script names, currency names, month names,
weekday names, quarter and day-period names, all written by CLDR translators in
the language's own script. Alphabetic languages split the names on white space
and keep only the tokens made entirely of letters of the locale's script (no
digits, brackets, apostrophes, hyphens, acronyms or foreign-script tokens).
Chinese has no word spaces, so each CLDR name made of Han characters is one
word.
"""

import unicodedata
from typing import Iterable, List

import babel
from babel.core import get_global, parse_locale

#: Unicode character-name prefix of each CLDR script code.
_SCRIPT_PREFIX = {
    "Latn": "LATIN",
    "Cyrl": "CYRILLIC",
    "Hans": "CJK UNIFIED IDEOGRAPH",
    "Hant": "CJK UNIFIED IDEOGRAPH",
}
_HAN_SCRIPTS = ("Hans", "Hant")


def locale_script(babel_locale: str) -> str:
    """CLDR script code of a locale (``Latn``, ``Cyrl``, ``Hans``...), via likely subtags."""
    locale = babel.Locale.parse(babel_locale)
    if locale.script:
        return locale.script
    likely = get_global("likely_subtags").get(locale.language)
    if likely is None:
        raise ValueError(f"CLDR has no likely script for locale {babel_locale!r}")
    script = parse_locale(likely)[2]
    if script is None:
        raise ValueError(f"CLDR likely subtags {likely!r} of {babel_locale!r} name no script")
    return script


def _cldr_names(locale: babel.Locale) -> Iterable[str]:
    """Every display name of the locale that is natural-language text."""
    yield from locale.territories.values()
    yield from locale.languages.values()
    yield from locale.scripts.values()
    yield from locale.currencies.values()
    for calendar_names in (locale.months, locale.days, locale.quarters):
        for width in ("wide",):
            for context in ("format", "stand-alone"):
                yield from calendar_names.get(context, {}).get(width, {}).values()
    for context in ("format", "stand-alone"):
        yield from locale.day_periods.get(context, {}).get("wide", {}).values()


def _is_script_word(token: str, prefix: str) -> bool:
    """True when every character of ``token`` is a letter whose Unicode name starts with ``prefix``."""
    for char in token:
        if not unicodedata.category(char).startswith("L"):
            return False
        if not unicodedata.name(char, "").startswith(prefix):
            return False
    return True


def vocabulary(babel_locale: str, min_chars: int = 2) -> List[str]:
    """Sorted unique words of ``babel_locale`` (see the module docstring for the source).

    Args:
        babel_locale: CLDR locale id, e.g. ``"sv_SE"`` or ``"zh_Hans_CN"``.
        min_chars: shortest word kept (characters).
    """
    locale = babel.Locale.parse(babel_locale)
    script = locale_script(babel_locale)
    if script not in _SCRIPT_PREFIX:
        raise ValueError(
            f"no word filter for script {script!r} of locale {babel_locale!r}; "
            f"known scripts: {', '.join(sorted(_SCRIPT_PREFIX))}"
        )
    prefix = _SCRIPT_PREFIX[script]
    words = set()
    for name in _cldr_names(locale):
        tokens = [name.strip()] if script in _HAN_SCRIPTS else name.split()
        for token in tokens:
            token = unicodedata.normalize("NFC", token)
            if len(token) < min_chars or not _is_script_word(token, prefix):
                continue
            if token.isupper():  # acronyms would be spelled out letter by letter
                continue
            words.add(token)
    if not words:
        raise ValueError(f"CLDR data of locale {babel_locale!r} gave no words")
    return sorted(words)
