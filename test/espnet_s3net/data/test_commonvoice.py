import pytest
from conftest import NEW_HEADER, OLD_HEADER, make_release, write_mp3

from espnet_s3net.data.commonvoice import check_release, prepare_locale, read_tsv, speaker_id


@pytest.mark.parametrize("header", [OLD_HEADER, NEW_HEADER], ids=["old_schema", "new_schema"])
def test_both_schema_generations(tmp_path, header):
    root = make_release(tmp_path / "cv", header=header)
    splits = prepare_locale(str(root), "es")
    train, skips = splits["train"]
    assert [u.text for u in train] == ["hola mundo", "buenos días"] and skips == []
    assert train[0].utt_id.startswith(speaker_id("es", "c1") + "-")
    assert [u.text for u in splits["dev"][0]] == ["adiós"]


def test_bad_inputs_are_named_skips(tmp_path):
    root = make_release(tmp_path / "cv", rows={
        "train": [("c1", "ok.mp3", "uno dos"), ("c1", "ok.mp3", "dup"), ("c1", "empty.mp3", "¿?"),
                  ("c1", "gone.mp3", "hola"), ("c1", "zero.mp3", "hola"), ("c1", "num.mp3", "3 gatos")],
        "dev": [("c2", "c.mp3", "Adiós")], "test": [("c3", "d.mp3", "Gracias")]})
    (root / "es" / "clips" / "gone.mp3").unlink()
    (root / "es" / "clips" / "zero.mp3").write_bytes(b"")
    with open(root / "es" / "train.tsv", "a", encoding="utf-8") as f:
        f.write("c1\tshort.mp3\tonly three fields\n")
    train, skips = prepare_locale(str(root), "es")["train"]
    assert [u.text for u in train] == ["uno dos"]
    reasons = {skip.item: skip.reason for skip in skips}
    assert reasons["ok.mp3"] == "duplicate clip path"
    assert reasons["empty.mp3"] == "empty sentence"
    assert reasons["gone.mp3"] == "missing clip file"
    assert reasons["zero.mp3"] == "zero-byte clip"
    assert reasons["num.mp3"] == "contains digits"
    bad_row = [skip for skip in skips if skip.item.endswith("train.tsv:8")]
    assert bad_row and bad_row[0][1:] == ("wrong number of fields", "row has 3 fields, header has 13")


def test_train_from_validated_excludes_dev_and_test(release):
    extra = release / "es" / "clips" / "x.mp3"
    write_mp3(extra)
    with open(release / "es" / "validated.tsv", "a", encoding="utf-8") as f:
        row = {"client_id": "c1", "path": "x.mp3", "sentence": "extra"}
        f.write("\t".join(row.get(c, "") for c in NEW_HEADER) + "\n")
    train, _ = prepare_locale(str(release), "es", train_from="validated")["train"]
    assert sorted(u.text for u in train) == ["buenos días", "extra", "hola mundo"]


def test_train_from_validated_drops_dev_and_test_speakers(tmp_path, caplog):
    root = make_release(tmp_path / "cv", rows={
        "train": [("c1", "a.mp3", "uno"), ("c2", "b.mp3", "dos"), ("c3", "e.mp3", "tres")],
        "dev": [("c2", "c.mp3", "Adiós")], "test": [("c3", "d.mp3", "Gracias")]})
    with caplog.at_level("INFO"):
        train, skips = prepare_locale(str(root), "es", train_from="validated")["train"]
    assert [u.text for u in train] == ["uno"]
    assert sorted(skips) == [
        ("b.mp3", "speaker is in dev/test", f"speaker {speaker_id('es', 'c2')} is in dev"),
        ("e.mp3", "speaker is in dev/test", f"speaker {speaker_id('es', 'c3')} is in test")]
    assert "5 rows, 2 are dev/test clips, 2 more are by dev/test speakers" in caplog.text


def test_hour_cap_and_split_lists(release, tmp_path):
    capped, _ = prepare_locale(str(release), "es", max_train_hours=1.5 / 3600)["train"]
    assert len(capped) == 1  # two 1 s clips, 1.5 s allowed
    lists = tmp_path / "lists" / "es"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("a o l a\nb.mp3\nmissing\n")
    (lists / "dev.txt").write_text("c\n")
    (lists / "test.txt").write_text("d a b\n")
    splits = prepare_locale(str(release), "es", split_list_dir=str(tmp_path / "lists"))
    train, skips = splits["train"]
    assert [(u.text, u.phones) for u in train] == [("hola mundo", "o l a"), ("buenos días", None)]
    assert ("missing", "listed clip not in validated.tsv", "") in skips
    assert splits["test"][0][0].phones == "a b"


def test_release_errors(release, tmp_path):
    with pytest.raises(ValueError, match="locale\\(s\\) fr not in the release .*it contains: es"):
        check_release(str(release), ["fr"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no Common Voice tsv files"):
        check_release(str(tmp_path / "empty"), ["es"])
    (tmp_path / "bad.tsv").write_text("a\tb\n")
    with pytest.raises(ValueError, match="header lacks column"):
        read_tsv(str(tmp_path / "bad.tsv"))
