import unicodedata

import pytest

from espnet_s3net.languages import LANGUAGES, XLSR10
from espnet_s3net.synth.vocabulary import locale_script, vocabulary


@pytest.mark.parametrize("locale", XLSR10)
def test_words_are_letters_of_the_locale_script(locale):
    babel_locale = LANGUAGES[locale].babel_locale
    words = vocabulary(babel_locale)
    # CLDR holds hundreds of territory/language/currency names per locale
    assert len(words) >= 300
    assert words == sorted(set(words))
    prefix = {"Latn": "LATIN", "Cyrl": "CYRILLIC", "Hans": "CJK"}[locale_script(babel_locale)]
    for word in words:
        assert all(unicodedata.category(c).startswith("L") for c in word), word
        assert all(unicodedata.name(c).startswith(prefix) for c in word), word


def test_scripts_and_known_words():
    assert locale_script("ru") == "Cyrl"
    assert locale_script("zh_Hans_CN") == "Hans"
    assert "Allemagne" in vocabulary("fr")
    assert "Германия" in vocabulary("ru")
    assert "德国" in vocabulary("zh_Hans_CN")  # whole CLDR names are Chinese words


def test_unknown_script_is_an_error():
    with pytest.raises(ValueError, match="no word filter for script 'Arab'"):
        vocabulary("ar")
