"""The language table: Common Voice locales, espeak-ng voices and XLSR-10 hours.

A *language id* everywhere in the toolkit is the Common Voice locale string
(``es``, ``sv-SE``, ``zh-CN``): it names data directories (``data/train_sv-SE``),
mask entries and result-table columns.
"""

from dataclasses import dataclass
from typing import Dict, Iterable, List


@dataclass(frozen=True)
class Language:
    """One supported language.

    Attributes:
        locale: Common Voice locale (the language id).
        espeak_voice: espeak-ng voice used for phonemes and synthetic speech.
        xlsr10_hours: hours of this language in XLSR-10 pre-training
            (0 for languages outside XLSR-10).
        babel_locale: CLDR locale that supplies real words for the synthetic corpus.
    """

    locale: str
    espeak_voice: str
    xlsr10_hours: float
    babel_locale: str


LANGUAGES: Dict[str, Language] = {
    lang.locale: lang
    for lang in (
        Language("es", "es", 168, "es"),
        Language("fr", "fr-fr", 353, "fr"),
        Language("it", "it", 90, "it"),
        Language("ky", "ky", 17, "ky"),
        Language("nl", "nl", 29, "nl"),
        Language("ru", "ru", 55, "ru"),
        Language("sv-SE", "sv", 3, "sv_SE"),
        Language("tr", "tr", 11, "tr"),
        Language("tt", "tt", 17, "tt"),
        Language("zh-CN", "cmn", 50, "zh_Hans_CN"),
        Language("zh-TW", "cmn", 50, "zh_Hant_TW"),
    )
}

#: The ten XLSR-10 languages, in the order of the paper's tables.
XLSR10: List[str] = ["es", "fr", "it", "ky", "nl", "ru", "sv-SE", "tr", "tt", "zh-CN"]


def get_language(locale: str) -> Language:
    """Look up ``locale``; raise ``ValueError`` listing the supported ones."""
    try:
        return LANGUAGES[locale]
    except KeyError:
        raise ValueError(
            f"unknown language code {locale!r}; supported: {', '.join(sorted(LANGUAGES))}"
        ) from None


def check_languages(locales: Iterable[str]) -> List[str]:
    """Validate a list of locales (all at once, one error naming every unknown one)."""
    locales = list(locales)
    unknown = [loc for loc in locales if loc not in LANGUAGES]
    if unknown:
        raise ValueError(
            f"unknown language code(s) {', '.join(map(repr, unknown))}; "
            f"supported: {', '.join(sorted(LANGUAGES))}"
        )
    return locales


def high_resource(locales: Iterable[str], n_high: int = 3) -> List[str]:
    """The ``n_high`` locales with the most XLSR-10 pre-training hours (ties by name)."""
    ranked = sorted(locales, key=lambda loc: (-get_language(loc).xlsr10_hours, loc))
    return ranked[:n_high]
