import os

import pytest

from espnet_s3net.data.kaldi_dir import (
    Skip,
    combine_data_dirs,
    drop_utterances,
    read_kaldi_map,
    read_skip_rows,
    read_skipped,
    validate_data_dir,
    write_data_dir,
)


def _dir(path, utts, lang="es"):
    write_data_dir(str(path), {
        "wav.scp": {u: f"/a/{u}.flac" for u in utts}, "text": {u: f"t {u}" for u in utts},
        "utt2spk": {u: u.split("-")[0] for u in utts}, "utt2lang": {u: lang for u in utts},
    })
    return str(path)


def test_write_sorts_and_derives(tmp_path):
    d = _dir(tmp_path / "d", ["s2-b", "s1-a", "s1-B"])
    assert list(read_kaldi_map(f"{d}/wav.scp")) == ["s1-B", "s1-a", "s2-b"]  # byte order
    assert read_kaldi_map(f"{d}/spk2utt") == {"s1": "s1-B s1-a", "s2": "s2-b"}
    assert not os.path.exists(f"{d}/category2utt")  # the language lives in utt2lang only
    validate_data_dir(d)


def test_drop_removes_everywhere_and_records(tmp_path):
    d = _dir(tmp_path / "d", ["s1-a", "s1-b", "s2-c"])
    drop_utterances(d, {"s1-b": "phonemizes to nothing"})
    for name in ("wav.scp", "text", "utt2spk", "utt2lang"):
        assert "s1-b" not in read_kaldi_map(f"{d}/{name}")
    assert read_kaldi_map(f"{d}/spk2utt")["s1"] == "s1-a"
    assert read_skipped(d) == [("s1-b", "phonemizes to nothing")]
    validate_data_dir(d)


def test_combine_and_validate_errors(tmp_path):
    a, b = _dir(tmp_path / "a", ["s1-a"]), _dir(tmp_path / "b", ["s2-b"], lang="fr")
    combine_data_dirs(str(tmp_path / "u"), [a, b])
    assert read_kaldi_map(f"{tmp_path}/u/utt2lang") == {"s1-a": "es", "s2-b": "fr"}
    with pytest.raises(ValueError, match="occurs in more than one"):
        combine_data_dirs(str(tmp_path / "v"), [a, a])
    (tmp_path / "u" / "text").write_text("s2-b x\ns1-a y\n")
    with pytest.raises(ValueError, match="text is not sorted"):
        validate_data_dir(str(tmp_path / "u"))
    (tmp_path / "u" / "text").write_text("s1-a y\n")
    with pytest.raises(ValueError, match="different utterances, first: s2-b"):
        validate_data_dir(str(tmp_path / "u"))


def test_skip_details_survive_combine(tmp_path):
    a = _dir(tmp_path / "a", ["s1-a"])
    write_data_dir(a, {}, [Skip("x.mp3", "wrong number of fields", "row has 3 fields, header has 13")])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "wav.scp").write_text("s2-b /b.flac\n")
    (tmp_path / "b" / "skipped.tsv").write_text("item\treason\ny.mp3\tempty sentence\n")  # no detail column
    combine_data_dirs(str(tmp_path / "u"), [a, str(tmp_path / "b")])
    assert read_skip_rows(str(tmp_path / "u")) == [
        ("x.mp3", "wrong number of fields", "row has 3 fields, header has 13"), ("y.mp3", "empty sentence", "")]
