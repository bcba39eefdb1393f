"""ESPnet ASR through our entry points with frontend: s3net (xlsr_tiny from scratch)."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.masks.pruning import prunable_parameters, random_masks
from espnet_s3net.models.xlsr import XLSRModel, get_config

CONFORMER = """
frontend: s3net
frontend_conf:
    xlsr_conf:
        name: xlsr_tiny
    mask_file: {masks}
    layer_selection: weighted_sum
    mask_time_prob: 0.2
    mask_time_length: 2
encoder: conformer
encoder_conf:
    output_size: 32
    attention_heads: 2
    linear_units: 64
    num_blocks: 1
    input_layer: linear
decoder: transformer
decoder_conf:
    attention_heads: 2
    linear_units: 64
    num_blocks: 1
normalize: null
model_conf:
    ctc_weight: 0.3
batch_type: lang_numel
batch_bins: 48000
num_iters_per_epoch: 1
max_epoch: 1
optim: adam
num_att_plot: 0
mask_source_check: false
"""


def _data(d, langs):
    d.mkdir()
    rng = np.random.default_rng(0)
    files = {name: [] for name in ("wav.scp", "text", "utt2category", "utt2num_samples", "utt2lang")}
    for lang in langs:
        for i in range(2):
            utt = f"{lang}-s-{i}"
            audio = (0.1 * rng.standard_normal(8000 + 800 * i)).astype(np.float32)
            sf.write(d / f"{utt}.flac", audio, 16000)
            for name, value in (("wav.scp", d / f"{utt}.flac"), ("text", "a b a"), ("utt2category", lang),
                                ("utt2lang", lang), ("utt2num_samples", len(audio))):
                files[name].append(f"{utt} {value}")
    for name, lines in files.items():
        (d / name).write_text("\n".join(sorted(lines)) + "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("asr")
    _data(tmp / "train", ["es", "fr"])
    _data(tmp / "test_es", ["es"])
    _data(tmp / "test_it", ["it"])
    model = XLSRModel(get_config("xlsr_tiny"))
    params = prunable_parameters(model)
    SubnetMasks.from_dense({lang: random_masks(params, 0.5, "layerwise", i) for i, lang in enumerate(["es", "fr"])},
                           {}).save(str(tmp / "masks.pt"))
    (tmp / "conf.yaml").write_text(CONFORMER.format(masks=tmp / "masks.pt"))
    (tmp / "tokens.txt").write_text("<blank>\n<unk>\na\nb\n<sos/eos>\n")
    d = tmp / "train"
    cmd = [sys.executable, "-m", "espnet_s3net.bin.asr_train", "--config", str(tmp / "conf.yaml"),
           "--output_dir", str(tmp / "exp"), "--token_type", "word", "--token_list", str(tmp / "tokens.txt"),
           "--train_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
           "--train_data_path_and_name_and_type", f"{d}/text,text,text", "--train_shape_file", f"{d}/utt2num_samples",
           "--valid_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
           "--valid_data_path_and_name_and_type", f"{d}/text,text,text", "--valid_shape_file", f"{d}/utt2num_samples"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp


def _decode(tmp, test_set, *extra):
    return subprocess.run([sys.executable, "-m", "espnet_s3net.bin.asr_inference",
                           "--asr_train_config", str(tmp / "exp" / "config.yaml"),
                           "--asr_model_file", str(tmp / "exp" / "1epoch.pth"), "--data_root", str(tmp),
                           "--test_sets", test_set, "--output_root", str(tmp / "exp"), *extra],
                          capture_output=True, text=True)


def test_conformer_ctc_attention_step_and_decoding(trained):
    assert (trained / "exp" / "1epoch.pth").exists()
    state = torch.load(trained / "exp" / "1epoch.pth", weights_only=True)
    assert any(k.startswith("frontend.xlsr.encoder") for k in state) and "frontend.layer_weights" in state
    result = _decode(trained, "test_es")
    assert result.returncode == 0, result.stderr[-3000:]
    hyp = (trained / "exp" / "decode_test_es" / "text").read_text().splitlines()
    assert len(hyp) == 2 and all(line.split()[0].startswith("es-") for line in hyp)


def test_beam_search_decoding(trained):
    result = _decode(trained, "test_es", "--beam_size", "3", "--ctc_weight", "0.5", "--maxlenratio", "0.5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "beam search (beam 3, CTC weight 0.5)" in result.stderr
    hyp = (trained / "exp" / "decode_test_es" / "text").read_text().splitlines()
    assert sorted(line.split()[0] for line in hyp) == ["es-s-0", "es-s-1"]
    assert all(set(line.split()[1:]) <= {"a", "b", "<unk>"} for line in hyp)


def test_language_without_mask(trained):
    result = _decode(trained, "test_it")
    assert result.returncode != 0 and "no sub-network mask for language 'it'; masks exist for: es, fr" in result.stderr
    result = _decode(trained, "test_it", "--missing_lang_mask", "dense")
    assert result.returncode == 0 and "using the dense model" in result.stderr
