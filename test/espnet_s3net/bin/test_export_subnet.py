"""export_subnet: a tiny S3Net CTC model trained by ``espnet2.bin.asr_train``, exported for
one language as a packed ESPnet model (decoded by Speech2Text without mask file or
language) and a Hugging Face Wav2Vec2ForCTC (loaded and decoded by transformers), both
equal to the shared model with the language's mask; storage sizes; bad inputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from language_data_dirs import LANGS

from espnet_s3net.asr.export import export_subnet, storage_sizes
from espnet_s3net.bin.export_subnet import main as export_main
from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.masks.pruning import random_masks
from espnet_s3net.models.xlsr import get_config

transformers = pytest.importorskip("transformers")

LANG = "es"
# logits of our model and of transformers' (float32, other attention kernels)
ATOL = 1e-4


def _run(cwd: Path, *args):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def trained(tiny_ctc):
    """The session's tiny CTC model (``tiny_ctc``: xlsr_tiny, last layer, passthrough encoder,
    word tokens, random masks for es and fr), exported for es by
    ``espnet_s3net.bin.export_subnet`` into ``export_es``."""
    tmp = tiny_ctc
    with pytest.MonkeyPatch.context() as patch:   # in-process: ESPnet's imports take seconds
        patch.chdir(tmp)
        export_main(["--asr_train_config", "exp/config.yaml", "--asr_model_file", "exp/1epoch.pth",
                            "--lang", LANG, "--output_dir", "export_es"])
    return tmp


def _test_set(tmp: Path):
    """The es utterances: ids, waveforms (S,) float32, reference texts."""
    from espnet_s3net.data.batches import read_waveforms

    wav = dict(line.split() for line in (tmp / "train" / "wav.scp").read_text().splitlines())
    text = dict(line.split(" ", 1) for line in (tmp / "train" / "text").read_text().splitlines())
    utts = sorted(u for u in wav if u.startswith(f"{LANG}-"))
    return utts, read_waveforms([wav[u] for u in utts]), [text[u] for u in utts]


def _model(config: str, model_file: str, lang=None):
    """An ESPnet model from files (relative paths: in the current directory), with ``lang``'s
    sub-network if given."""
    from espnet_s3net.asr.inference import use_language
    from espnet_s3net.tasks.asr import S3NetASRTask

    model, _ = S3NetASRTask.build_model_from_file(config, model_file, "cpu")
    if lang is not None:
        assert use_language(model, lang)
    return model.eval()


def _greedy(model, audio):
    """Our batched CTC greedy hypotheses (tokens joined by spaces) of one padded batch."""
    from espnet_s3net.asr.inference import GreedyCTCDecoder

    return [" ".join(tokens) for tokens in GreedyCTCDecoder(model, "cpu")(audio)]


def test_espnet_export_decodes_without_mask_or_language(trained, tmp_path, monkeypatch):
    """The packed model: Speech2Text with no mask file and no language gives the shared
    model's tokens with es's mask, utterance by utterance; its weights are W ⊙ m."""
    from espnet2.bin.asr_inference import Speech2Text
    from espnet2.main_funcs.pack_funcs import unpack

    from espnet_s3net.asr.inference import use_language
    from espnet_s3net.train.language_data import language_followers

    config = yaml.safe_load((trained / "export_es" / "espnet" / "config.yaml").read_text())
    assert config["frontend"] == "s3net" and "mask_file" not in config["frontend_conf"]
    files = unpack(trained / "export_es" / "espnet.zip", tmp_path / "unpacked")
    exported = Speech2Text.from_pretrained(**files, ctc_weight=1.0, beam_size=2)
    assert language_followers(exported.asr_model) == []
    monkeypatch.chdir(trained)   # the training config's mask file is relative
    shared = Speech2Text("exp/config.yaml", "exp/1epoch.pth", ctc_weight=1.0, beam_size=2)
    use_language(shared.asr_model, LANG)
    utts, audio, _ = _test_set(trained)
    for utt, wav in zip(utts, audio):
        tokens = exported(wav)[0][1]
        assert tokens == shared(wav)[0][1], utt
        assert tokens, utt   # not all blank: the comparison says something

    keep = SubnetMasks.load("masks.pt").dense(LANG)
    dense = torch.load("exp/1epoch.pth", weights_only=True)
    masked = exported.asr_model.state_dict()
    assert sorted(masked) == sorted(dense)
    for key, value in dense.items():
        name = key.removeprefix("frontend.xlsr.")
        assert torch.equal(masked[key], torch.where(keep[name], value, 0.0) if name in keep else value), key


def test_hf_export_equals_our_decoder(trained, monkeypatch):
    """transformers' Wav2Vec2ForCTC + Wav2Vec2Processor from the exported directory: the same
    logits (within ATOL) and greedy hypotheses, hence PER, as our decoder on the es set (one
    padded batch); our HF import of the directory gives back the exported encoder."""
    import jiwer

    from espnet_s3net.data.batches import pad_waveforms
    from espnet_s3net.models.checkpoint_import import from_checkpoint

    hf_dir = trained / "export_es" / "hf"
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["architectures"] == ["Wav2Vec2ForCTC"] and config["vocab_size"] == 5
    assert config["pad_token_id"] == 0 and config["ctc_loss_reduction"] == "mean"
    vocab = json.loads((hf_dir / "vocab.json").read_text())
    assert vocab == {"<blank>": 0, "<unk>": 1, "a": 2, "b": 3, "<sos/eos>": 4}
    hf = transformers.Wav2Vec2ForCTC.from_pretrained(hf_dir).eval()
    processor = transformers.Wav2Vec2Processor.from_pretrained(hf_dir)
    assert processor.tokenizer.pad_token == "<blank>" and len(processor.tokenizer) == 5
    assert processor.feature_extractor.do_normalize is False

    monkeypatch.chdir(trained)
    ours = _model("exp/config.yaml", "exp/1epoch.pth", LANG)
    utts, audio, refs = _test_set(trained)
    speech, lengths = pad_waveforms(audio)
    inputs = processor(audio, sampling_rate=16000, padding=True, return_tensors="pt")
    assert torch.equal(inputs.input_values, speech)   # not normalised, zero padded
    with torch.no_grad():
        logits = hf(**inputs).logits
        enc, frames = ours.encode(speech, lengths)
        our_logits = ours.ctc.ctc_lo(enc)
    assert torch.equal(hf._get_feat_extract_output_lengths(inputs.attention_mask.sum(-1)), frames)
    for i, n in enumerate(frames.tolist()):
        torch.testing.assert_close(logits[i, :n], our_logits[i, :n], atol=ATOL, rtol=0)
    ids = logits.argmax(-1)
    hf_hyps = [processor.decode(ids[i, :n]) for i, n in enumerate(frames.tolist())]
    our_hyps = _greedy(ours, audio)
    assert hf_hyps == our_hyps and all(our_hyps)
    assert jiwer.wer(refs, hf_hyps) == jiwer.wer(refs, our_hyps)

    xlsr = from_checkpoint(str(hf_dir)).eval()
    with torch.no_grad():
        states, _, _ = xlsr.encode(speech, lengths)
    torch.testing.assert_close(states[-1], enc, atol=1e-6, rtol=0)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_sizes(trained):
    """sizes.json: dense and masked model files of the same size; CSR bytes equal to torch's
    CSR layout of the exported weights with int32 indices; bitmask + values."""
    sizes = json.loads((trained / "export_es" / "sizes.json").read_text())
    assert sizes["lang"] == LANG and sizes["sparsity"] == pytest.approx(0.5, abs=1e-6)
    assert sizes["masked_model_file_bytes"] == pytest.approx(sizes["dense_model_file_bytes"], rel=0.01)
    state = torch.load(trained / "export_es" / "espnet" / "model.pth", weights_only=True)
    keep = SubnetMasks.load(str(trained / "masks.pt")).dense(LANG)
    csr = 0
    for name in keep:
        sparse = state[f"frontend.xlsr.{name}"].to_sparse_csr()
        csr += sparse.values().nbytes + sparse.col_indices().int().nbytes + sparse.crow_indices().int().nbytes
    assert sizes["prunable_csr_bytes"] == csr
    numel = sum(m.numel() for m in keep.values())
    assert sizes["prunable_dense_bytes"] == 4 * numel and sizes["kept_weights"] == numel // 2
    assert sizes["prunable_bitmask_bytes"] == sum((m.numel() + 7) // 8 for m in keep.values()) + 4 * (numel // 2)
    assert sizes["model_bitmask_bytes"] < sizes["model_tensor_bytes"]
    assert sizes["espnet_zip_bytes"] > sizes["masked_model_file_bytes"] and sizes["hf_safetensors_bytes"] > 0


def test_semi_structured_storage_of_a_2_of_4_mask():
    """2:4: the kept half of the values plus 2 bits of metadata per kept value (no entry for an
    unstructured mask)."""
    weight = torch.randn(8, 16)
    keep = {"w": random_masks({"w": weight}, 0.5, "layerwise", 0, "2:4")["w"]}
    sizes = storage_sizes({"w": weight}, keep, "2:4")
    assert sizes["kept"] == 64 and sizes["semi_structured_bytes"] == 64 * 4 + 64 * 2 // 8
    # at 2:4 the metadata is 1 bit per weight, as a bitmask
    assert sizes["semi_structured_bytes"] == sizes["bitmask_bytes"] < sizes["dense_bytes"]
    assert "semi_structured_bytes" not in storage_sizes({"w": weight}, keep)


def test_bad_inputs(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(trained)
    with pytest.raises(SystemExit, match=r"no mask for language 'it'.*es, fr"):
        export_main(["--asr_train_config", "exp/config.yaml", "--asr_model_file", "exp/1epoch.pth", "--lang", "it",
                     "--output_dir", str(tmp_path / "it")])
    assert not (tmp_path / "it").exists()
    with pytest.raises(ValueError, match="formats must be among espnet, hf, got onnx"):
        export_subnet("exp/config.yaml", "exp/1epoch.pth", LANG, str(tmp_path / "x"), formats=["onnx"])

    config = yaml.safe_load((trained / "exp" / "config.yaml").read_text())
    del config["frontend_conf"]["mask_file"]
    (tmp_path / "nomask.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="no mask_file in frontend_conf"):
        export_subnet(str(tmp_path / "nomask.yaml"), "exp/1epoch.pth", LANG, str(tmp_path / "x"))

    config["frontend_conf"]["language_modules"] = {"type": "gating", "languages": list(LANGS)}
    (tmp_path / "gates.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"language modules \(gating\)"):
        export_subnet(str(tmp_path / "gates.yaml"), "exp/1epoch.pth", LANG, str(tmp_path / "x"),
                      mask_file="masks.pt")
    assert not (tmp_path / "x").exists()


def test_weighted_sum_exports_for_espnet_only(trained, tmp_path, monkeypatch):
    """layer_selection weighted_sum: hf refused, naming the reason; espnet exported (mask
    file moved: given with mask_file), decoding as the shared model with the mask."""
    config = yaml.safe_load((trained / "exp" / "config.yaml").read_text())
    config["frontend_conf"].update(layer_selection="weighted_sum", mask_file="moved/masks.pt")
    (tmp_path / "weighted.yaml").write_text(yaml.safe_dump(config))
    state = torch.load(trained / "exp" / "1epoch.pth", weights_only=True)
    state["frontend.layer_weights"] = torch.randn(get_config("xlsr_tiny").num_layers + 1)
    torch.save(state, tmp_path / "weighted.pth")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"cannot become a Hugging Face Wav2Vec2ForCTC: layer_selection: "
                                         r"weighted_sum \(Wav2Vec2ForCTC's head reads the last layer only\)"):
        export_subnet("weighted.yaml", "weighted.pth", LANG, "out")
    assert not (tmp_path / "out").exists()
    export_subnet("weighted.yaml", "weighted.pth", LANG, "out", mask_file=str(trained / "masks.pt"),
                  formats=["espnet"])
    assert (tmp_path / "out" / "espnet.zip").exists() and not (tmp_path / "out" / "hf").exists()

    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "masks.pt").symlink_to(trained / "masks.pt")
    _, audio, _ = _test_set(trained)
    exported = _greedy(_model("out/espnet/config.yaml", "out/espnet/model.pth"), audio)
    assert exported == _greedy(_model("weighted.yaml", "weighted.pth", LANG), audio)


@pytest.mark.parametrize("token_type, token_list", [
    ("word", ["<blank>", "<unk>", "aː", "b", "<sos/eos>"]),
    ("char", ["<blank>", "<unk>", "<space>", "a", "b", "<sos/eos>"]),
])
def test_huggingface_tokenizer_decodes_as_espnet(tmp_path, token_type, token_list):
    """An argmax path decoded by the HF tokenizer = CTC greedy + ESPnet's tokens2text."""
    from espnet2.text.build_tokenizer import build_tokenizer

    from espnet_s3net.asr.export import huggingface_tokenizer
    from espnet_s3net.asr.inference import ctc_greedy

    path = torch.tensor([3, 3, 0, 4, 2, 3, 0, 3, 1, 1, 0])
    expected = build_tokenizer(token_type).tokens2text([token_list[i] for i in ctc_greedy(path, len(path))])
    eos = len(token_list) - 1
    tokenizer = huggingface_tokenizer(token_list, token_type, str(tmp_path / "vocab.json"), 0, eos, eos)
    assert len(tokenizer) == len(token_list) and tokenizer.pad_token_id == 0
    assert tokenizer.decode(path) == expected
    assert expected == {"word": "b <sos/eos> aː b b <unk>", "char": "ab aa<unk>"}[token_type]
