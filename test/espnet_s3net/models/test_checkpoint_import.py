"""Import equivalence with transformers' Wav2Vec2ForPreTraining (test dependency only)."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from espnet_s3net.models.checkpoint_import import load_pretrained, read_huggingface_config  # noqa: E402
from espnet_s3net.models.span_mask import span_mask  # noqa: E402
from espnet_s3net.models.xlsr import XLSRModel, get_config  # noqa: E402


def _hf_config(pre_ln: bool):
    return transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2), conv_bias=pre_ln,
        feat_extract_norm="layer" if pre_ln else "group", do_stable_layer_norm=pre_ln,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        num_codevector_groups=2, num_codevectors_per_group=8, codevector_dim=16, proj_codevector_dim=16,
    )


@pytest.mark.parametrize("pre_ln", [False, True], ids=["post_ln", "pre_ln"])
def test_huggingface_import_matches(tmp_path, pre_ln):
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForPreTraining(_hf_config(pre_ln)).eval()
    hf.save_pretrained(tmp_path)
    ours = XLSRModel(read_huggingface_config(str(tmp_path))).eval()
    load_pretrained(ours, str(tmp_path))

    wav = torch.randn(2, 4000)
    feats, _ = ours.extract_features(wav)
    mask = span_mask(2, feats.shape[1], 0.5, 3, min_masks=1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        hf_out = hf(wav, mask_time_indices=mask)
        hf_hidden = hf.wav2vec2(wav, mask_time_indices=mask).last_hidden_state
        hidden, _, _ = ours.encode(wav, time_mask=mask)
        normed = ours.encoder.feature_projection.layer_norm(feats)
        targets = ours.project_q(ours.quantizer(normed[mask])[0])
    torch.testing.assert_close(hidden[-1], hf_hidden, atol=1e-4, rtol=0)
    torch.testing.assert_close(targets, hf_out.projected_quantized_states[mask], atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.final_proj(hidden[-1]), hf_out.projected_states, atol=1e-4, rtol=0)


def test_architecture_mismatch_names_the_tensor(tmp_path):
    hf = transformers.Wav2Vec2ForPreTraining(_hf_config(False))
    hf.save_pretrained(tmp_path)
    cfg = read_huggingface_config(str(tmp_path))
    cfg.ffn_dim = 48
    with pytest.raises(ValueError, match=r"feed_forward\.intermediate_dense\.weight has shape \(64, 32\)"):
        load_pretrained(XLSRModel(cfg), str(tmp_path))


def test_missing_checkpoint_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_pretrained(XLSRModel(get_config("xlsr_tiny")), str(tmp_path / "nope.pt"))


def _to_fairseq(name: str, layer_norm_mode: bool) -> str:
    """XLSRModel tensor name -> fairseq wav2vec 2.0 name (built here independently)."""
    import re

    rules = [
        (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
        (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.",
         r"feature_extractor.conv_layers.\1.2.1." if layer_norm_mode else r"feature_extractor.conv_layers.\1.2."),
        (r"^encoder\.feature_projection\.projection\.", "post_extract_proj."),
        (r"^encoder\.feature_projection\.layer_norm\.", "layer_norm."),
        (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$", "encoder.pos_conv.0.weight_g"),
        (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$", "encoder.pos_conv.0.weight_v"),
        (r"^encoder\.transformer\.pos_conv_embed\.conv\.bias$", "encoder.pos_conv.0.bias"),
        (r"^encoder\.transformer\.layer_norm\.", "encoder.layer_norm."),
        (r"^encoder\.transformer\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
        (r"^encoder\.transformer\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
        (r"^encoder\.transformer\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
        (r"^encoder\.transformer\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
        (r"^encoder\.transformer\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
        (r"^quantizer\.codevectors$", "quantizer.vars"),
    ]
    for pattern, repl in rules:
        if re.search(pattern, name):
            return re.sub(pattern, repl, name)
    return name


@pytest.mark.parametrize("pre_ln", [False, True], ids=["post_ln", "pre_ln"])
def test_fairseq_checkpoint_import_matches(tmp_path, pre_ln):
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForPreTraining(_hf_config(pre_ln)).eval()
    hf.save_pretrained(tmp_path / "hf")
    cfg = read_huggingface_config(str(tmp_path / "hf"))
    reference = XLSRModel(cfg).eval()
    load_pretrained(reference, str(tmp_path / "hf"))
    state = {_to_fairseq(k, pre_ln): v for k, v in reference.state_dict().items() if k != "quantizer.num_updates"}
    assert "encoder.layers.0.fc1.weight" in state and "quantizer.vars" in state
    torch.save({"cfg": {"model": {"_name": "wav2vec2"}}, "model": state}, tmp_path / "xlsr.pt")
    ours = XLSRModel(cfg).eval()
    load_pretrained(ours, str(tmp_path / "xlsr.pt"))
    wav = torch.randn(2, 4000)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(wav)[0][-1], reference.encode(wav)[0][-1], atol=1e-5, rtol=0)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(ours.state_dict()[name], tensor), name
