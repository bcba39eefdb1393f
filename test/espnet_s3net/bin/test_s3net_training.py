"""The S3Net training stage from extracted masks: pre-train → extract TE masks →
language-adaptive training of xlsr_tiny on espeak-ng speech of two languages, through
the same entry points as recipe stages 6-8. A few updates train the sub-networks and
nothing else (default run); 300 updates lower the contrastive loss (slow)."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from espnet_s3net.bin import extract_subnets, ssl_train
from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.synth.espeak import get_engine

CONF = Path(__file__).parents[3] / "egs2/commonvoice_s3net/ssl1/conf"
SENTENCES = {
    "es": ["la casa es grande y blanca", "el perro come pan", "mañana vamos al mercado",
           "los niños juegan en el parque"],
    "fr": ["la maison est grande et blanche", "le chien mange du pain", "demain nous allons au marché",
           "les enfants jouent dans le parc"],
}
S3NET_CONFIG = """
model_conf:
    xlsr_conf:
        name: xlsr_tiny
        # annealed within this short run (see conf/s3net_train_tiny.yaml)
        latent_temp: [1.0, 0.5, 0.99]
    mask_file: {masks}
batch_type: lang_numel
lang_alpha: 0.5
batch_bins: 400000
num_iters_per_epoch: {iters}
max_epoch: {epochs}
num_workers: 0
num_att_plot: 0
optim: adam
optim_conf:
    lr: 2.0e-3
grad_clip: 10.0
best_model_criterion:
-   - valid
    - loss
    - min
keep_nbest_models: 1
log_interval: 20
seed: 0
"""


def _speech_dirs(root: Path):
    """train_<lang>/ and train_multi/ (wav.scp, utt2num_samples, utt2lang) of espeak speech."""
    engine = get_engine()
    union = {"wav.scp": [], "utt2num_samples": [], "utt2lang": []}
    for lang, sentences in SENTENCES.items():
        d = root / f"train_{lang}"
        d.mkdir(parents=True)
        files = {name: [] for name in union}
        voice = engine.voice_name(lang)
        for i, text in enumerate(sentences):
            pcm = engine.synthesize(text, voice, seed=i).astype(np.float32) / 32768.0
            audio = soxr.resample(pcm, engine.sample_rate, 16000)
            utt = f"{lang}-spk{i}-{i:03d}"
            sf.write(d / f"{utt}.flac", audio, 16000)
            for name, value in (("wav.scp", d / f"{utt}.flac"), ("utt2num_samples", len(audio)),
                                ("utt2lang", lang)):
                files[name].append(f"{utt} {value}\n")
        for name, lines in files.items():
            (d / name).write_text("".join(lines))
            union[name] += lines
    (root / "train_multi").mkdir()
    for name, lines in union.items():
        (root / "train_multi" / name).write_text("".join(sorted(lines)))
    return root / "train_multi"


def _data_args(train: Path):
    return ["--train_data_path_and_name_and_type", f"{train}/wav.scp,speech,sound",
            "--train_data_path_and_name_and_type", f"{train}/utt2lang,lang,text",
            "--valid_data_path_and_name_and_type", f"{train}/utt2lang,lang,text",
            "--train_shape_file", f"{train}/utt2num_samples",
            "--valid_data_path_and_name_and_type", f"{train}/wav.scp,speech,sound",
            "--valid_shape_file", f"{train}/utt2num_samples", "--ngpu", "0"]


def _train_contrastive(log: str):
    """The mean training contrastive loss of each epoch, from ESPnet's epoch summaries."""
    return [float(m) for m in re.findall(r"epoch results: \[train\].*?loss_contrastive=([0-9.]+)", log)]


def _s3net_run(tmp_path: Path, epochs: int, iters: int):
    """Pre-training, TE extraction and S3Net training; the S3Net run's log (stderr)."""
    train = _speech_dirs(tmp_path / "dump")
    pre = tmp_path / "exp" / "xlsr_pretrain"
    ssl_train.main(["--config", str(CONF / "pretrain_xlsr_tiny.yaml"), "--output_dir", str(pre), *_data_args(train)])
    masks = tmp_path / "exp" / "subnets_te" / "masks.pt"
    extract_subnets.main(["--config", str(CONF / "extract_te.yaml"), "--model_config", str(pre / "config.yaml"),
                          "--model_file", str(pre / "valid.loss.ave.pth"), "--data_root", str(tmp_path / "dump"),
                          "--langs", "es fr", "--output", str(masks)])
    assert SubnetMasks.load(str(masks)).languages == ["es", "fr"]

    out = tmp_path / "exp" / "s3net_te"
    (tmp_path / "s3net.yaml").write_text(S3NET_CONFIG.format(masks=masks, epochs=epochs, iters=iters))
    result = subprocess.run([sys.executable, "-m", "espnet_s3net.bin.ssl_train",
                             "--config", str(tmp_path / "s3net.yaml"),
                             "--output_dir", str(out), "--init_param", str(pre / "valid.loss.ave.pth"),
                             *_data_args(train)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "masks.fingerprint").exists()
    assert all(f"[train] language {lang}:" in result.stderr for lang in ("es", "fr"))
    return result.stderr


def test_s3net_training_from_extracted_masks_moves_only_the_sub_networks(tmp_path):
    _s3net_run(tmp_path, epochs=1, iters=10)
    exp = tmp_path / "exp"
    start = torch.load(exp / "xlsr_pretrain" / "valid.loss.ave.pth", weights_only=True)
    end = torch.load(exp / "s3net_te" / "valid.loss.ave.pth", weights_only=True)
    subnets = SubnetMasks.load(str(exp / "subnets_te" / "masks.pt"))
    es, fr = subnets.dense("es"), subnets.dense("fr")
    moved = kept = 0
    for name in subnets.names:
        union = es[name] | fr[name]
        before, after = start[f"xlsr.{name}"], end[f"xlsr.{name}"]
        assert torch.equal(after[~union], before[~union]), name  # in no language's sub-network
        moved += int((after[union] != before[union]).sum())
        kept += int(union.sum())
    assert moved > 0.9 * kept, (moved, kept)  # Adam moves every weight with a gradient


@pytest.mark.slow
def test_s3net_training_from_extracted_masks_lowers_the_loss(tmp_path):
    losses = _train_contrastive(_s3net_run(tmp_path, epochs=5, iters=60))
    assert len(losses) == 5, losses
    # Chance level is log(K + 1) = log(21) = 3.04 (xlsr_tiny: K = 20 distractors); a run
    # that learned nothing stays there (epoch means within ±0.05). The contrastive term
    # alone is checked: the feature penalty and diversity terms fall by themselves.
    assert losses[-1] < losses[0] - 0.3, losses
    assert losses[-1] < 0.9 * np.log(21), losses
