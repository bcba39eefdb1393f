from conftest import make_release

from espnet_s3net.data.commonvoice import prepare_release as prepare
from espnet_s3net.data.kaldi_dir import read_kaldi_map, read_skipped


def test_validated_train_is_speaker_disjoint_and_counted(tmp_path, caplog):
    root = make_release(tmp_path / "cv", rows={
        "train": [("c1", "a.mp3", "uno"), ("c2", "b.mp3", "dos"), ("c3", "e.mp3", "tres")],
        "dev": [("c2", "c.mp3", "Adiós")], "test": [("c3", "d.mp3", "Gracias")]})
    data = tmp_path / "data"
    with caplog.at_level("INFO"):
        prepare(str(root), ["es"], str(data), "validated", None, None)
    train_speakers = set(read_kaldi_map(str(data / "train_es" / "utt2spk")).values())
    for split in ("dev", "test"):
        assert not train_speakers & set(read_kaldi_map(str(data / f"{split}_es" / "utt2spk")).values())
    assert sorted(read_skipped(str(data / "train_es"))) == [("b.mp3", "speaker is in dev/test"),
                                                            ("e.mp3", "speaker is in dev/test")]
    assert "train_es: 1 utterances, 2 skipped (speaker is in dev/test: 2)" in caplog.text
