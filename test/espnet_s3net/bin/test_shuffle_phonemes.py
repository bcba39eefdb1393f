"""shuffle_phonemes: a tiny CTC model trained by ``espnet2.bin.asr_train`` aligns a data dir's
transcripts; the written data dir holds the shuffled audio of every utterance."""

import numpy as np
import soundfile as sf
from language_data_dirs import train_asr

from espnet_s3net.bin.shuffle_phonemes import main
from espnet_s3net.data.kaldi_dir import read_kaldi_map, validate_data_dir

CTC = """
frontend: s3net
frontend_conf:
    xlsr_conf:
        name: xlsr_tiny
    mask_file: masks.pt
encoder: passthrough
normalize: null
model_conf:
    ctc_weight: 1.0
batch_type: lang_numel
batch_bins: 48000
num_iters_per_epoch: 1
max_epoch: 1
optim: adam
num_workers: 0
num_att_plot: 0
mask_source_check: false
"""


def test_shuffled_data_dir_from_a_trained_ctc_model(tmp_path, monkeypatch):
    result = train_asr(tmp_path, CTC)
    assert result.returncode == 0, result.stderr[-3000:]
    es = tmp_path / "es"
    es.mkdir()
    for name in ("wav.scp", "text", "utt2lang", "utt2num_samples"):
        lines = (tmp_path / "train" / name).read_text().splitlines()
        (es / name).write_text("".join(f"{line}\n" for line in lines if line.startswith("es-")))
    monkeypatch.chdir(tmp_path)
    main(["--asr_train_config", "exp/config.yaml", "--asr_model_file", "exp/1epoch.pth", "--data_dir", "es",
          "--out_dir", "es_shuffled", "--text", "text"])
    validate_data_dir("es_shuffled")
    source, shuffled = read_kaldi_map("es/wav.scp"), read_kaldi_map("es_shuffled/wav.scp")
    assert sorted(shuffled) == sorted(source)
    for utt, path in shuffled.items():
        new, old = sf.read(path, dtype="float32")[0], sf.read(source[utt], dtype="float32")[0]
        assert len(new) == len(old) and not np.allclose(new, old, atol=1e-3)
