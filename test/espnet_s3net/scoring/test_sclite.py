import os
import shutil

import pytest

from espnet_s3net.scoring import sclite

# where tools/setup.sh's `apt-get install sctk` puts sclite (off PATH)
DEBIAN_SCLITE = "/usr/lib/sctk/bin/sclite"
# decided independently of sclite.find_sclite, so a lookup that misses an installed sclite fails
# the tests below instead of skipping them
SCLITE_INSTALLED = shutil.which("sclite") is not None or os.path.exists(DEBIAN_SCLITE)
needs_sclite = pytest.mark.skipif(not SCLITE_INSTALLED, reason="sclite (Debian sctk) not installed")

# u1: 2 deletions, u2: 4 insertions, u3: 1 substitution, u4 and u5 correct; every column differs
REF = {"u1": "a b c d e", "u2": "f g h i j", "u3": "k l m n", "u4": "o p", "u5": "r s"}
HYP = {"u1": "a c e", "u2": "f x g h i j y z w", "u3": "k q m n", "u4": "o p", "u5": "r s"}
COUNTS = {"sentences": 5, "tokens": 18, "corr": 15, "sub": 1, "del": 2, "ins": 4, "err": 7, "sent_err": 3}
RATES = {"sentences": 5, "tokens": 18, "corr": 83.3, "sub": 5.6, "del": 11.1, "ins": 22.2, "err": 38.9,
         "sent_err": 60.0}
# the summary tables of sclite 2.4.10 (-o all stdout) for REF/HYP
SCLITE_OUTPUT = """
       | SPKR   | # Snt # Wrd | Corr    Sub    Del    Ins    Err  S.Err |
       |--------+-------------+-----------------------------------------|
       |        |    5     18 | 83.3    5.6   11.1   22.2   38.9   60.0 |
       |================================================================|
       | Sum/Avg|    5     18 | 83.3    5.6   11.1   22.2   38.9   60.0 |
       |================================================================|
       |  Mean  |  5.0   18.0 | 83.3    5.6   11.1   22.2   38.9   60.0 |

        | SPKR | # Snt # Wrd | Corr    Sub    Del    Ins    Err  S.Err |
        |------+-------------+-----------------------------------------|
        |      |    5     18 |   15      1      2      4      7      3 |
        |==============================================================|
        | Sum  |    5     18 |   15      1      2      4      7      3 |
        |==============================================================|
        | Mean |  5.0   18.0 | 15.0    1.0    2.0    4.0    7.0    3.0 |
"""


def _check_result(result_txt):
    assert sclite.read_summary(result_txt) == RATES
    assert sclite.read_summary(result_txt, "Sum") == COUNTS
    assert sclite.read_error_rate(result_txt) == 38.9


def test_each_column_of_sclite_output(tmp_path):
    (tmp_path / "result.txt").write_text(SCLITE_OUTPUT)
    _check_result(str(tmp_path / "result.txt"))


@needs_sclite
def test_sclite_scores_each_column(tmp_path):
    assert sclite.score(REF, HYP, str(tmp_path), "word") == 38.9
    assert "computed with jiwer" not in (tmp_path / "result.txt").read_text()
    _check_result(str(tmp_path / "result.txt"))
    assert "(u1)" in (tmp_path / "ref.trn").read_text()


@pytest.mark.skipif(not os.path.exists(DEBIAN_SCLITE), reason=f"no {DEBIAN_SCLITE}")
def test_debian_sclite_is_found_off_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert sclite.find_sclite() == DEBIAN_SCLITE


def test_jiwer_fallback_scores_each_column(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sclite, "find_sclite", lambda: None)
    assert sclite.score(REF, HYP, str(tmp_path), "word") == 38.9
    assert "sclite not found" in caplog.text
    _check_result(str(tmp_path / "result.txt"))
    # char unit: "ab" vs "ac" -> 1 of 2 characters
    assert sclite.score({"u": "ab"}, {"u": "ac"}, str(tmp_path / "c"), "char") == pytest.approx(50.0)
    assert sclite.to_units("a b", "char") == "a <space> b"


@needs_sclite
@pytest.mark.parametrize("unit", ["word", "char"])
def test_jiwer_fallback_agrees_with_sclite(tmp_path, monkeypatch, unit):
    rates = {"sclite": sclite.score(REF, HYP, str(tmp_path / "sclite"), unit)}
    monkeypatch.setattr(sclite, "find_sclite", lambda: None)
    rates["jiwer"] = sclite.score(REF, HYP, str(tmp_path / "jiwer"), unit)
    assert rates["sclite"] == rates["jiwer"]
    for row in ("Sum/Avg", "Sum"):
        assert (sclite.read_summary(str(tmp_path / "sclite" / "result.txt"), row)
                == sclite.read_summary(str(tmp_path / "jiwer" / "result.txt"), row)), row
