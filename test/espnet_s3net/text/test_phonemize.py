import pytest

from espnet_s3net.languages import XLSR10
from espnet_s3net.text import phonemize as phonemize_module
from espnet_s3net.text.phonemize import Phonemizer, clean_phones


def test_clean_phones_removes_markers_and_boundaries():
    assert clean_phones("q ɑ | d[ ɑ  (en) r") == "q ɑ d ɑ en r"
    assert clean_phones(" | ") == ""


@pytest.mark.parametrize("locale", XLSR10)
def test_every_xlsr10_language_phonemizes(locale):
    sentence = {"zh-CN": "你好"}.get(locale, "a")
    phones = Phonemizer(locale)([sentence])[0]
    assert phones and "|" not in phones and "  " not in phones


def test_cache_avoids_second_phonemization(tmp_path):
    first = Phonemizer("es", cache_dir=str(tmp_path))
    out = first(["hola mundo", "hola mundo", "adiós"])
    assert out[0] == out[1] == "o l a m u n d o" and first.backend_calls == 1
    second = Phonemizer("es", cache_dir=str(tmp_path))
    assert second(["adiós", "hola mundo"]) == [out[2], out[0]]
    assert second.backend_calls == 0
    third = Phonemizer("es", cache_dir=str(tmp_path))
    third(["hola", "adiós"])  # one new sentence: one call, for it alone
    assert third.backend_calls == 1 and "hola" in Phonemizer("es", cache_dir=str(tmp_path)).cache


def test_backend_receives_only_unseen_sentences(tmp_path, monkeypatch):
    seen = []

    def fake_backend(self, sentences):
        seen.append(list(sentences))
        return [" | ".join(s) for s in sentences]

    monkeypatch.setattr(phonemize_module.Phonemizer, "_backend", fake_backend)
    p = Phonemizer("es", cache_dir=str(tmp_path))
    assert p(["ab", "c", "ab"]) == ["a b", "c", "a b"]
    assert p(["c", "d"]) == ["c", "d"]
    assert seen == [["ab", "c"], ["d"]]
