"""Per-utterance error counts (utt_errors) written by scoring, the same by sclite and jiwer."""

import os
import shutil

import numpy as np
import pytest

from espnet_s3net.scoring import sclite

# where tools/setup.sh's `apt-get install sctk` puts sclite (off PATH)
DEBIAN_SCLITE = "/usr/lib/sctk/bin/sclite"
SCLITE_INSTALLED = shutil.which("sclite") is not None or os.path.exists(DEBIAN_SCLITE)
needs_sclite = pytest.mark.skipif(not SCLITE_INSTALLED, reason="sclite (Debian sctk, installed by tools/setup.sh "
                                  "when run as root) not installed")

# Spk1-U1: 2 deletions, Spk1-U2: 4 insertions, u3: 1 substitution, u4 and u5 correct, u6 empty
# hypothesis (3 deletions), u7 empty reference (2 insertions); mixed case: sclite prints ids in lower case
REF = {"Spk1-U1": "a b c d e", "Spk1-U2": "f g h i j", "u3": "k l m n", "u4": "o p", "u5": "r s",
       "u6": "t u v", "u7": ""}
HYP = {"Spk1-U1": "a c e", "Spk1-U2": "f x g h i j y z w", "u3": "k q m n", "u4": "o p", "u5": "r s", "u7": "q r"}
EXPECTED_WORD = "Spk1-U1 2 5\nSpk1-U2 4 5\nu3 1 4\nu4 0 2\nu5 0 2\nu6 3 3\nu7 2 0\n"


def _score(tmp_path, monkeypatch, tool, unit, ref=REF, hyp=HYP):
    out = tmp_path / f"{tool}_{unit}"
    with monkeypatch.context() as patch:
        if tool == "jiwer":
            patch.setattr(sclite, "find_sclite", lambda: None)
        sclite.score(ref, hyp, str(out), unit)
    if tool == "sclite":
        assert "computed with jiwer" not in (out / "result.txt").read_text()
    return out


def _sums_match_result(out):
    utts, errors, ref_len = sclite.read_utt_errors(str(out / sclite.UTT_ERRORS))
    counts = sclite.read_summary(str(out / "result.txt"), "Sum")
    assert (errors.sum(), ref_len.sum(), len(utts)) == (counts["err"], counts["tokens"], counts["sentences"])


def test_jiwer_writes_hand_counted_utt_errors(tmp_path, monkeypatch):
    out = _score(tmp_path, monkeypatch, "jiwer", "word")
    assert (out / "utt_errors").read_text() == EXPECTED_WORD
    _sums_match_result(out)
    utts, errors, ref_len = sclite.read_utt_errors(str(out / "utt_errors"))
    assert utts == sorted(REF)
    assert errors.tolist() == [2, 4, 1, 0, 0, 3, 2] and ref_len.tolist() == [5, 5, 4, 2, 2, 3, 0]


@needs_sclite
@pytest.mark.parametrize("unit", ["word", "char"])
def test_sclite_and_jiwer_write_the_same_utt_errors(tmp_path, monkeypatch, unit):
    by_sclite = _score(tmp_path, monkeypatch, "sclite", unit)
    by_jiwer = _score(tmp_path, monkeypatch, "jiwer", unit)
    assert (by_sclite / "utt_errors").read_text() == (by_jiwer / "utt_errors").read_text()
    if unit == "word":
        assert (by_sclite / "utt_errors").read_text() == EXPECTED_WORD
    for out in (by_sclite, by_jiwer):
        _sums_match_result(out)


@needs_sclite
def test_sclite_and_jiwer_agree_on_random_edits(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    ref, hyp = {}, {}
    for i in range(300):
        tokens = list(rng.choice(list("abcde"), rng.integers(0, 10)))
        edited = list(tokens)
        for _ in range(rng.integers(0, 5)):
            op = rng.integers(3)
            if op == 0 and edited:
                edited.pop(rng.integers(len(edited)))
            elif op == 1:
                edited.insert(rng.integers(len(edited) + 1), rng.choice(list("abcdef")))
            elif edited:
                edited[rng.integers(len(edited))] = rng.choice(list("abcdef"))
        ref[f"utt{i:04d}"], hyp[f"utt{i:04d}"] = " ".join(tokens), " ".join(edited)
    by_sclite = _score(tmp_path, monkeypatch, "sclite", "word", ref, hyp)
    by_jiwer = _score(tmp_path, monkeypatch, "jiwer", "word", ref, hyp)
    assert (by_sclite / "utt_errors").read_text() == (by_jiwer / "utt_errors").read_text()


def test_parse_sclite_alignments():
    output = ("Speaker sentences   0:  spk1   #utts: 1\nid: (spk1-u1)\nScores: (#C #S #D #I) 3 1 2 4\n"
              "REF:  a B c D e\nHYP:  a * c * e\n\nid: (u2)\nScores: (#C #S #D #I) 0 0 0 2\n")
    assert sclite.parse_sclite_utterances(output) == {"spk1-u1": (7, 6), "u2": (2, 0)}


def test_ids_sclite_cannot_score_are_refused(tmp_path):
    with pytest.raises(ValueError, match="'ABC' and 'abc' differ only in case"):
        sclite.score({"ABC": "a", "abc": "b"}, {}, str(tmp_path / "a"), "word")
    with pytest.raises(ValueError, match=r"'u\(1\)' holds a parenthesis"):
        sclite.score({"u(1)": "a"}, {}, str(tmp_path / "b"), "word")


def test_an_earlier_utt_errors_is_not_left_behind(tmp_path, monkeypatch):
    out = _score(tmp_path, monkeypatch, "jiwer", "word")
    monkeypatch.setattr(sclite, "find_sclite", lambda: None)
    monkeypatch.setattr(sclite, "_jiwer_result", lambda ref, hyp, unit: ("| Sum | 1 1 | 1 0 0 0 0 0 |\n", {}))
    with pytest.raises(ValueError):  # no Sum/Avg line: scoring fails after removing the old file
        sclite.score(REF, HYP, str(out), "word")
    assert not (out / "utt_errors").exists()


def test_read_utt_errors_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="utt_errors does not exist"):
        sclite.read_utt_errors(str(tmp_path / "utt_errors"))
    (tmp_path / "bad").write_text("u1 2 5\nu2 x 5\n")
    with pytest.raises(ValueError, match="bad:2"):
        sclite.read_utt_errors(str(tmp_path / "bad"))
    (tmp_path / "twice").write_text("u1 2 5\nu1 2 5\n")
    with pytest.raises(ValueError, match="more than once"):
        sclite.read_utt_errors(str(tmp_path / "twice"))


def test_read_utt_errors_sorts_by_id(tmp_path):
    (tmp_path / "utt_errors").write_text("u2 1 3\nu1 2 5\n")
    utts, errors, ref_len = sclite.read_utt_errors(str(tmp_path / "utt_errors"))
    assert utts == ["u1", "u2"] and errors.tolist() == [2, 1] and ref_len.tolist() == [5, 3]
    (tmp_path / "empty").write_text("")
    utts, errors, ref_len = sclite.read_utt_errors(str(tmp_path / "empty"))
    assert utts == [] and errors.shape == (0,) and ref_len.shape == (0,)
