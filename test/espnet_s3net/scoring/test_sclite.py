import pytest

from espnet_s3net.scoring import sclite

REF = {"u1": "a b c d e", "u2": "f g h i j"}
HYP = {"u1": "a b x d e", "u2": "f g h i j"}  # 1 substitution in 10 phones


@pytest.mark.skipif(sclite.find_sclite() is None, reason="sclite (Debian sctk) not installed")
def test_sclite_phone_error_rate(tmp_path):
    assert sclite.score(REF, HYP, str(tmp_path), "word") == pytest.approx(10.0)
    assert "(u1)" in (tmp_path / "ref.trn").read_text()


def test_jiwer_fallback_gives_the_same_figure(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sclite, "find_sclite", lambda: None)
    assert sclite.score(REF, HYP, str(tmp_path), "word") == pytest.approx(10.0)
    assert "sclite not found" in caplog.text
    # char unit: "ab" vs "ac" -> 1 of 2 characters
    assert sclite.score({"u": "ab"}, {"u": "ac"}, str(tmp_path / "c"), "char") == pytest.approx(50.0)
    assert sclite.to_units("a b", "char") == "a <space> b"
