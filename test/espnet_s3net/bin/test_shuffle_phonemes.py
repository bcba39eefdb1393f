"""shuffle_phonemes: the session's tiny CTC model (``tiny_ctc``) aligns a data dir's
transcripts; the written data dir holds the shuffled audio of every utterance."""

import numpy as np
import soundfile as sf

from espnet_s3net.bin.shuffle_phonemes import main
from espnet_s3net.data.kaldi_dir import read_kaldi_map, validate_data_dir


def test_shuffled_data_dir_from_a_trained_ctc_model(tiny_ctc, tmp_path, monkeypatch):
    es = tmp_path / "es"
    es.mkdir()
    for name in ("wav.scp", "text", "utt2lang", "utt2num_samples"):
        lines = (tiny_ctc / "train" / name).read_text().splitlines()
        (es / name).write_text("".join(f"{line}\n" for line in lines if line.startswith("es-")))
    monkeypatch.chdir(tiny_ctc)  # the training config's paths are relative to it
    main(["--asr_train_config", "exp/config.yaml", "--asr_model_file", "exp/1epoch.pth", "--data_dir", str(es),
          "--out_dir", str(tmp_path / "es_shuffled"), "--text", "text"])
    validate_data_dir(str(tmp_path / "es_shuffled"))
    source, shuffled = read_kaldi_map(str(es / "wav.scp")), read_kaldi_map(str(tmp_path / "es_shuffled" / "wav.scp"))
    assert sorted(shuffled) == sorted(source)
    for utt, path in shuffled.items():
        new, old = sf.read(path, dtype="float32")[0], sf.read(source[utt], dtype="float32")[0]
        assert len(new) == len(old) and not np.allclose(new, old, atol=1e-3)
