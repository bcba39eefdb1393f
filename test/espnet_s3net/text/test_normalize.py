import pytest

from espnet_s3net.text.normalize import normalize_sentence


@pytest.mark.parametrize(
    "sentence, locale, expected",
    [
        ("L'homme, ÇA va ?", "fr", "l'homme ça va"),
        ("Dell’anno scorso!", "it", "dell'anno scorso"),
        ("İSTANBUL ve Irmak.", "tr", "istanbul ve ırmak"),
        ("Привет, мир!", "ru", "привет мир"),
        ("我们。你好！", "zh-CN", "我们 你好"),  # no casing; full-width punctuation removed
        ("Don't  «stop»  —  now", "nl", "don t stop now"),  # apostrophe kept only in fr/it
        ("ＡＢＣ", "es", "abc"),  # NFKC folds full-width letters
    ],
)
def test_normalisation_rules(sentence, locale, expected):
    assert normalize_sentence(sentence, locale) == (expected, None)


def test_turkish_i_differs_from_default_lowering():
    assert normalize_sentence("IRMAK", "tr")[0] == "ırmak"
    assert normalize_sentence("IRMAK", "nl")[0] == "irmak"


@pytest.mark.parametrize("sentence, reason", [("Hay 3 gatos", "contains digits"),
                                               ("?! ...", "empty sentence"), ("", "empty sentence")])
def test_dropped_sentences_give_a_reason(sentence, reason):
    assert normalize_sentence(sentence, "es") == (None, reason)


def test_unknown_locale_lists_supported():
    with pytest.raises(ValueError, match="supported: .*sv-SE"):
        normalize_sentence("hej", "xx")
