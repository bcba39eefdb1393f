"""ESPnet's own entry points with frontend: s3net (xlsr_tiny from scratch, a conformer with
CTC/attention): espnet2.bin.asr_train, espnet2.bin.asr_inference, espnet2.bin.pack and
Speech2Text on the unpacked files, each language decoded with its sub-network."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from language_data_dirs import LANGS, lang_data, train_asr

from espnet_s3net.models.xlsr import get_config

CONFORMER = """
frontend: s3net
frontend_conf:
    xlsr_conf:
        name: xlsr_tiny
    mask_file: masks.pt
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
num_iters_per_epoch: 2
max_epoch: 1
optim: adam
num_att_plot: 0
mask_source_check: false
"""


def _run(cwd: Path, *args, env=None):
    """``python -m <args>`` in ``cwd`` (relative paths, as a recipe runs them)."""
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained by ``python -m espnet2.bin.asr_train`` (paths relative to the dir)."""
    tmp = tmp_path_factory.mktemp("asr")
    result = train_asr(tmp, CONFORMER)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp


def _espnet_decode(tmp: Path, config: str, model: str, out: str, *lang_input, env=None):
    return _run(tmp, "espnet2.bin.asr_inference", "--asr_train_config", config, "--asr_model_file", model,
                "--data_path_and_name_and_type", "train/wav.scp,speech,sound", *lang_input,
                "--output_dir", out, "--beam_size", "2", "--ctc_weight", "0.5", "--maxlenratio", "0.5", env=env)


def _tokens(path: Path):
    return {utt: hyp.strip() for utt, _, hyp in (line.partition(" ") for line in path.read_text().splitlines())}


def test_stock_training_writes_a_portable_config(trained):
    import yaml

    config = yaml.safe_load((trained / "exp" / "config.yaml").read_text())
    assert config["frontend"] == "s3net" and config["frontend_conf"]["mask_file"] == "masks.pt"
    assert config["frontend_conf"]["xlsr_conf"]["num_layers"] == get_config("xlsr_tiny").num_layers
    state = torch.load(trained / "exp" / "1epoch.pth", weights_only=True)
    assert "frontend.layer_weights" in state and any(k.startswith("frontend.xlsr.encoder") for k in state)


def test_stock_inference_decodes_each_language_with_its_sub_network(trained):
    result = _espnet_decode(trained, "exp/config.yaml", "exp/1epoch.pth", "decode_stock",
                            "--data_path_and_name_and_type", "train/utt2lang,lang,text")
    assert result.returncode == 0, result.stderr[-3000:]
    hyps = _tokens(trained / "decode_stock" / "1best_recog" / "token")
    assert sorted(hyps) == sorted(f"{lang}-s-{i}" for lang in LANGS for i in range(2))
    assert all(set(h.split()) <= {"a", "b", "<unk>"} for h in hyps.values())


def test_stock_inference_without_language_stops(trained):
    result = _espnet_decode(trained, "exp/config.yaml", "exp/1epoch.pth", "decode_nolang")
    assert result.returncode != 0 and "no language is active" in result.stderr


def test_plugin_can_be_switched_off(trained):
    result = _espnet_decode(trained, "exp/config.yaml", "exp/1epoch.pth", "decode_off",
                            "--data_path_and_name_and_type", "train/utt2lang,lang,text",
                            env={"ESPNET_S3NET_PLUGIN": "0"})
    assert result.returncode != 0 and "s3net" in result.stderr


def test_plugin_loads_nothing_heavy_when_unused():
    out = subprocess.run([sys.executable, "-c", "import sys; print(sorted(m for m in ('torch', 'espnet2', "
                          "'espnet_s3net.tasks') if m in sys.modules))"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]"


def test_pack_unpack_and_speech2text_use_the_packed_masks(trained, tmp_path):
    result = _run(trained, "espnet2.bin.pack", "asr", "--asr_train_config", "exp/config.yaml",
                  "--asr_model_file", "exp/1epoch.pth", "--option", "masks.pt", "--outpath", "packed.zip")
    assert result.returncode == 0, result.stderr[-3000:]
    import soundfile as sf
    from espnet2.bin.asr_inference import Speech2Text
    from espnet2.main_funcs.pack_funcs import unpack

    from espnet_s3net.asr.inference import use_language
    from espnet_s3net.masks.language_masker import find_maskers

    files = unpack(trained / "packed.zip", tmp_path / "unpacked")
    speech2text = Speech2Text.from_pretrained(**files, beam_size=2, ctc_weight=0.5, maxlenratio=0.5)
    (masker,) = find_maskers(speech2text.asr_model)
    assert masker.masks.source == f"mask file {tmp_path / 'unpacked' / 'masks.pt'}"  # the packed copy
    stock = _tokens(trained / "decode_stock" / "1best_recog" / "token") if (
        trained / "decode_stock").exists() else None
    wav = dict(line.split() for line in (trained / "train" / "wav.scp").read_text().splitlines())
    for lang in LANGS:
        use_language(speech2text.asr_model, lang)
        assert masker.active == lang
        for i in range(2):
            utt = f"{lang}-s-{i}"
            text, tokens, *_ = speech2text(sf.read(wav[utt], dtype="float32")[0])[0]
            if stock is not None:
                assert " ".join(tokens) == stock[utt]  # the same sub-network as the CLI used
    # a packed model whose mask file is missing: a clear error naming it
    os.remove(tmp_path / "unpacked" / "masks.pt")
    with pytest.raises(FileNotFoundError, match="masks.pt"):
        Speech2Text(**files)


def test_greedy_decoder_and_missing_language(trained, tmp_path):
    shutil.copytree(trained / "train", tmp_path / "test_it")
    (tmp_path / "test_it" / "utt2lang").write_text("".join(f"{u} it\n" for u in sorted(
        line.split()[0] for line in (trained / "train" / "wav.scp").read_text().splitlines())))
    lang_data(tmp_path / "test_es")
    es = sorted(line for line in (tmp_path / "test_es" / "utt2lang").read_text().splitlines() if " es" in line)
    for name in ("wav.scp", "utt2num_samples", "utt2lang", "text"):
        lines = (tmp_path / "test_es" / name).read_text().splitlines()
        (tmp_path / "test_es" / name).write_text("".join(f"{x}\n" for x in lines if x.split()[0].startswith("es-")))
    assert len(es) == 2

    def greedy(test_set, *extra):
        return _run(trained, "espnet_s3net.bin.asr_inference", "--asr_train_config", "exp/config.yaml",
                    "--asr_model_file", "exp/1epoch.pth", "--data_root", str(tmp_path), "--test_sets", test_set,
                    "--output_root", str(tmp_path / "exp"), *extra)

    result = greedy("test_es")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "decoded test_es (es, sub-network) by CTC greedy" in result.stderr
    assert "decoding " in result.stderr and "(100%)" in result.stderr  # progress with an ETA
    assert len((tmp_path / "exp" / "decode_test_es" / "text").read_text().splitlines()) == 2
    result = greedy("test_es", "--dtype", "bfloat16", "--sparse_kernels", "auto")
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("language es: semi-structured sparse kernels not used, dense masked weights instead: the mask pattern "
            "is unstructured, the kernels need 2:4; the weights are on cpu") in result.stderr
    result = greedy("test_it")
    assert result.returncode != 0 and "no sub-network mask for language 'it'; masks exist for: es, fr" in result.stderr
    result = greedy("test_it", "--missing_lang_mask", "dense")
    assert result.returncode == 0 and "using the dense model" in result.stderr
