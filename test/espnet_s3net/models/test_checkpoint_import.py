"""Import of Hugging Face and fairseq checkpoints: equivalence with transformers'
Wav2Vec2ForPreTraining (test dependency only), architecture read from the checkpoint and
checked against a given config."""

import argparse
import dataclasses

import pytest
import torch

transformers = pytest.importorskip("transformers")

from espnet_s3net.asr.frontend.s3net import S3NetFrontend  # noqa: E402
from espnet_s3net.models.checkpoint_import import (  # noqa: E402
    config_from_fairseq,
    config_to_huggingface,
    convert_huggingface_state,
    from_checkpoint,
    huggingface_state,
    load_pretrained,
    read_checkpoint_config,
    read_huggingface_config,
)
from espnet_s3net.models.pretrain_model import XLSRPretrainModel  # noqa: E402
from espnet_s3net.models.span_mask import span_mask  # noqa: E402
from espnet_s3net.models.xlsr import (  # noqa: E402
    ARCHITECTURE_FIELDS,
    HEAD_FIELDS,
    TRAINING_FIELDS,
    XLSRConfig,
    XLSRModel,
    get_config,
)


def _hf_config(pre_ln: bool, codevector_dim: int = 16, **overrides):
    return transformers.Wav2Vec2Config(**{
        **dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            conv_dim=(16, 16, 16), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2), conv_bias=pre_ln,
            feat_extract_norm="layer" if pre_ln else "group", do_stable_layer_norm=pre_ln,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, num_codevector_groups=2,
            num_codevectors_per_group=8, codevector_dim=codevector_dim, proj_codevector_dim=16,
        ),
        **overrides,
    })


@pytest.mark.parametrize("pre_ln, codevector_dim", [(False, 16), (True, 16), (False, 24)],
                         ids=["post_ln", "pre_ln", "codevector_dim_24"])
def test_huggingface_import_matches(tmp_path, pre_ln, codevector_dim):
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForPreTraining(_hf_config(pre_ln, codevector_dim)).eval()
    hf.save_pretrained(tmp_path)
    ours = XLSRModel(read_huggingface_config(str(tmp_path))).eval()
    load_pretrained(ours, str(tmp_path))
    assert ours.quantizer.codevectors.shape == (1, 16, codevector_dim // 2)

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


@pytest.mark.parametrize("changes", [{}, dict(extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True,
                                               codevector_dim=24, latent_temp=(2.0, 0.1, 0.9))],
                         ids=["post_ln", "pre_ln"])
def test_huggingface_export_matches_and_round_trips(tmp_path, changes):
    """Ours -> HF names and config: transformers' Wav2Vec2ForPreTraining takes every tensor
    (strictly) and computes the same hidden states; HF -> ours gives the model back, except
    the settings HF has no field for."""
    cfg = get_config("xlsr_tiny", dropout=0.1, mask_prob=0.5, min_masks=1, **changes)
    torch.manual_seed(0)
    ours = XLSRModel(cfg).eval()
    state = ours.state_dict()
    hf = transformers.Wav2Vec2ForPreTraining(transformers.Wav2Vec2Config(**config_to_huggingface(cfg))).eval()
    hf.load_state_dict(huggingface_state(state))
    wav = torch.randn(2, 4000)
    with torch.no_grad():
        hidden, _, _ = ours.encode(wav)
        torch.testing.assert_close(hf.wav2vec2(wav).last_hidden_state, hidden[-1], atol=1e-4, rtol=0)
    back = convert_huggingface_state(hf.state_dict())
    assert sorted(back) == sorted(k for k in state if k != "quantizer.num_updates")
    assert all(torch.equal(back[k], state[k]) for k in back)

    hf.save_pretrained(tmp_path)
    read = read_huggingface_config(str(tmp_path))
    assert read.architecture() == cfg.architecture()
    without_hf_field = {"feature_grad_mult", "latent_temp", "feature_penalty_weight"}
    assert {f: getattr(read, f) for f in TRAINING_FIELDS if f not in without_hf_field} == {
        f: getattr(cfg, f) for f in TRAINING_FIELDS if f not in without_hf_field}
    torch.testing.assert_close(from_checkpoint(str(tmp_path)).state_dict(), state)


def test_huggingface_export_refuses_language_modules():
    with pytest.raises(ValueError, match="language_modules.adapters.es.0.down.weight of the XLSR model has no "
                                         "Hugging Face wav2vec2 counterpart"):
        huggingface_state({"language_modules.adapters.es.0.down.weight": torch.zeros(1)})


def test_architecture_mismatch_names_the_field(tmp_path):
    hf = transformers.Wav2Vec2ForPreTraining(_hf_config(False))
    hf.save_pretrained(tmp_path)
    cfg = read_huggingface_config(str(tmp_path))
    cfg.ffn_dim = 48
    with pytest.raises(ValueError, match="ffn_dim: config 48, checkpoint 64"):
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
        (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$",
         "encoder.pos_conv.0.weight_g"),
        (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$",
         "encoder.pos_conv.0.weight_v"),
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


def _fairseq_model_cfg(cfg: XLSRConfig) -> dict:
    """fairseq wav2vec 2.0 ``cfg["model"]`` of ``cfg`` (built here independently)."""
    return {
        "_name": "wav2vec2", "extractor_mode": "layer_norm" if cfg.extractor_mode == "layer_norm" else "default",
        "conv_feature_layers": " + ".join(f"[{tuple(layer)}]" for layer in cfg.conv_layers),
        "conv_bias": cfg.conv_bias, "encoder_embed_dim": cfg.embed_dim, "encoder_layers": cfg.num_layers,
        "encoder_attention_heads": cfg.num_heads, "encoder_ffn_embed_dim": cfg.ffn_dim, "activation_fn": "gelu",
        "layer_type": "transformer", "conv_pos": cfg.pos_conv_kernel, "conv_pos_groups": cfg.pos_conv_groups,
        "pos_conv_depth": 1, "layer_norm_first": cfg.layer_norm_first, "dropout": cfg.dropout,
        "attention_dropout": cfg.attention_dropout, "activation_dropout": cfg.activation_dropout,
        "dropout_input": cfg.dropout_input, "dropout_features": cfg.dropout_features,
        "encoder_layerdrop": cfg.layer_drop, "feature_grad_mult": cfg.feature_grad_mult,
        "final_dim": cfg.final_dim, "latent_dim": cfg.codevector_dim or 0, "quantize_targets": True,
        "quantize_input": False, "target_glu": False, "quantizer_depth": 1, "latent_vars": cfg.latent_vars,
        "latent_groups": cfg.latent_groups, "latent_temp": list(cfg.latent_temp), "mask_prob": cfg.mask_prob,
        "mask_length": cfg.mask_length, "num_negatives": cfg.num_negatives, "logit_temp": cfg.logit_temp,
    }


def _save_fairseq(path, model: XLSRModel, model_cfg=None, old_format=False) -> str:
    """``model`` as a fairseq ``.pt`` (new: ``cfg["model"]``; old: an ``args`` namespace
    with string-valued lists)."""
    layer_norm_mode = model.cfg.extractor_mode == "layer_norm"
    state = {_to_fairseq(k, layer_norm_mode): v for k, v in model.state_dict().items() if k != "quantizer.num_updates"}
    model_cfg = model_cfg or _fairseq_model_cfg(model.cfg)
    if old_format:
        args = dict(model_cfg, arch=model_cfg.pop("_name"), latent_temp=str(tuple(model_cfg["latent_temp"])))
        torch.save({"args": argparse.Namespace(**args), "model": state}, path)
    else:
        torch.save({"args": None, "cfg": {"model": model_cfg}, "model": state}, path)
    return str(path)


# distinct values, so that a field read from the wrong option shows
_FAIRSEQ_CFG = XLSRConfig(
    extractor_mode="layer_norm", conv_layers=[(16, 10, 5), (16, 3, 2), (16, 2, 2)], conv_bias=True,
    embed_dim=32, num_layers=2, num_heads=4, ffn_dim=64, pos_conv_kernel=16, pos_conv_groups=4,
    layer_norm_first=True, dropout=0.01, attention_dropout=0.02, activation_dropout=0.03, dropout_input=0.04,
    dropout_features=0.05, layer_drop=0.06, feature_grad_mult=0.5, final_dim=16, codevector_dim=24,
    latent_groups=2, latent_vars=8, latent_temp=(2.0, 0.25, 0.9), mask_prob=0.5, mask_length=5,
    num_negatives=7, logit_temp=0.2,
)


@pytest.mark.parametrize("old_format", [False, True], ids=["cfg", "args"])
def test_fairseq_config_is_read(tmp_path, old_format):
    torch.manual_seed(0)
    reference = XLSRModel(_FAIRSEQ_CFG)
    path = _save_fairseq(tmp_path / "xlsr.pt", reference, old_format=old_format)
    assert read_checkpoint_config(path) == _FAIRSEQ_CFG
    ours = from_checkpoint(path)
    assert ours.cfg == _FAIRSEQ_CFG and ours.quantizer.codevectors.shape == (1, 16, 12)
    assert ours.project_q.weight.shape == (16, 24)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(ours.state_dict()[name], tensor), name


@pytest.mark.parametrize("final_dim, latent_dim, expected", [(16, 0, (16, 16)), (16, 24, (16, 24)), (0, 0, (32, 32))])
def test_fairseq_zero_dims_mean_the_next_size(final_dim, latent_dim, expected):
    cfg = config_from_fairseq(dict(_fairseq_model_cfg(_FAIRSEQ_CFG), final_dim=final_dim, latent_dim=latent_dim))
    assert (cfg.final_dim, cfg.quantizer_dim) == expected


@pytest.mark.parametrize("change, message", [
    (dict(conv_pos=None), "lacks 'conv_pos'"),
    (dict(quantize_targets=False), "quantize_targets=False is not supported"),
    (dict(extractor_mode="group_norm"), "extractor_mode 'group_norm' is not one of"),
    (dict(conv_feature_layers="__import__('os').getcwd()"), "conv_feature_layers .* is not a list of number literals"),
])
def test_fairseq_config_errors_name_the_option(tmp_path, change, message):
    model_cfg = {k: v for k, v in {**_fairseq_model_cfg(_FAIRSEQ_CFG), **change}.items() if v is not None}
    path = _save_fairseq(tmp_path / "xlsr.pt", XLSRModel(_FAIRSEQ_CFG), model_cfg)
    with pytest.raises(ValueError, match=f"checkpoint {path}: .*{message}"):
        read_checkpoint_config(path)


def test_checkpoint_shape_mismatch_names_the_tensor(tmp_path):
    model_cfg = dict(_fairseq_model_cfg(_FAIRSEQ_CFG), encoder_ffn_embed_dim=48)  # the tensors are 64 wide
    path = _save_fairseq(tmp_path / "xlsr.pt", XLSRModel(_FAIRSEQ_CFG), model_cfg)
    with pytest.raises(ValueError, match=r"feed_forward\.intermediate_dense\.weight has shape \(64, 32\)"):
        from_checkpoint(path)


@pytest.mark.parametrize("fmt", ["fairseq", "huggingface"])
def test_checkpoint_without_xlsr_conf(tmp_path, fmt):
    """A checkpoint path alone builds the pre-training model and the frontend."""
    torch.manual_seed(0)
    if fmt == "fairseq":
        reference = XLSRModel(_FAIRSEQ_CFG)
        path = _save_fairseq(tmp_path / "xlsr.pt", reference)
    else:
        transformers.Wav2Vec2ForPreTraining(_hf_config(True, codevector_dim=24)).save_pretrained(tmp_path)
        path = str(tmp_path)
        reference = from_checkpoint(path)
    pretrain = XLSRPretrainModel(init_checkpoint=path)
    frontend = S3NetFrontend(init_checkpoint=path)
    assert pretrain.xlsr.cfg == reference.cfg == frontend.xlsr.cfg
    assert torch.equal(pretrain.xlsr.quantizer.codevectors, reference.quantizer.codevectors)
    wav = torch.randn(1, 4000)
    with torch.no_grad():
        torch.testing.assert_close(frontend.eval()(wav, torch.tensor([4000]))[0], reference.eval().encode(wav)[0][-1])


def _named_conf(cfg: XLSRConfig, **changes) -> dict:
    """``xlsr_conf`` (named config + overrides) equal to ``cfg`` but for ``changes``."""
    return {"name": "xlsr_tiny", **dataclasses.asdict(cfg), **changes}


def test_architecture_without_tensor_shape_must_match(tmp_path):
    transformers.Wav2Vec2ForPreTraining(_hf_config(False)).save_pretrained(tmp_path / "hf")
    cfg = read_huggingface_config(str(tmp_path / "hf"))
    path = _save_fairseq(tmp_path / "xlsr.pt", XLSRModel(cfg))
    conf = _named_conf(cfg, layer_norm_first=True, num_heads=4)
    for checkpoint in (str(tmp_path / "hf"), path):
        with pytest.raises(ValueError, match=f"architecture of checkpoint {checkpoint}: "
                           "num_heads: config 4, checkpoint 2; layer_norm_first: config True, checkpoint False$"):
            XLSRPretrainModel(xlsr_conf=conf, init_checkpoint=checkpoint)
        with pytest.raises(ValueError, match="num_heads: config 4, checkpoint 2"):
            S3NetFrontend(xlsr_conf=conf, init_checkpoint=checkpoint)


def test_extractor_mode_with_equal_shapes_must_match(tmp_path):
    # one conv layer: group norm and layer norm have the same (16,) affine tensors
    hf_config = _hf_config(False, conv_dim=(16,), conv_kernel=(10,), conv_stride=(5,))
    transformers.Wav2Vec2ForPreTraining(hf_config).save_pretrained(tmp_path)
    cfg = read_huggingface_config(str(tmp_path))
    with pytest.raises(ValueError, match="extractor_mode: config 'layer_norm', checkpoint 'group_norm'"):
        from_checkpoint(str(tmp_path), dataclasses.replace(cfg, extractor_mode="layer_norm"))


def test_training_settings_may_differ(tmp_path):
    torch.manual_seed(0)
    transformers.Wav2Vec2ForPreTraining(_hf_config(True)).save_pretrained(tmp_path)
    cfg = dataclasses.replace(
        read_huggingface_config(str(tmp_path)), dropout=0.3, layer_drop=0.2, mask_prob=0.3,
        latent_temp=(1.0, 0.5, 0.9), feature_penalty_weight=0.0, num_negatives=5,
    )
    pretrain = XLSRPretrainModel(xlsr_conf=_named_conf(cfg), init_checkpoint=str(tmp_path))
    assert pretrain.xlsr.cfg == cfg


def test_heads_absent_from_the_checkpoint_are_the_configs(tmp_path):
    """An encoder-only checkpoint says nothing binding about the heads; one with heads does."""
    transformers.Wav2Vec2Model(_hf_config(True)).save_pretrained(tmp_path / "encoder")
    transformers.Wav2Vec2ForPreTraining(_hf_config(True)).save_pretrained(tmp_path / "pretraining")
    cfg = dataclasses.replace(read_huggingface_config(str(tmp_path / "encoder")), final_dim=8, codevector_dim=None,
                              latent_vars=4)
    assert from_checkpoint(str(tmp_path / "encoder"), cfg).project_q.weight.shape == (8, 8)
    with pytest.raises(ValueError, match="final_dim: config 8, checkpoint 16; codevector_dim: config 8, "
                       "checkpoint 16; latent_vars: config 4, checkpoint 8$"):
        from_checkpoint(str(tmp_path / "pretraining"), cfg)


def test_every_config_field_is_architecture_or_training():
    fields = [f.name for f in dataclasses.fields(XLSRConfig)]
    assert sorted(ARCHITECTURE_FIELDS + TRAINING_FIELDS) == sorted(fields)
    assert set(HEAD_FIELDS) <= set(ARCHITECTURE_FIELDS)


def test_codevector_dim_sizes_the_quantizer():
    torch.manual_seed(0)
    default = XLSRModel(get_config("xlsr_tiny"))
    assert default.quantizer.codevectors.shape == (1, 32, 16) and default.project_q.weight.shape == (32, 32)
    model = XLSRModel(get_config("xlsr_tiny", codevector_dim=48))
    assert model.quantizer.codevectors.shape == (1, 32, 24) and model.project_q.weight.shape == (32, 48)
    out = model.forward_pretrain(torch.randn(2, 8000), torch.tensor([8000, 6000]))
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("pre_ln", [False, True], ids=["post_ln", "pre_ln"])
def test_fairseq_checkpoint_import_matches(tmp_path, pre_ln):
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForPreTraining(_hf_config(pre_ln)).eval()
    hf.save_pretrained(tmp_path / "hf")
    cfg = read_huggingface_config(str(tmp_path / "hf"))
    reference = XLSRModel(cfg).eval()
    load_pretrained(reference, str(tmp_path / "hf"))
    path = _save_fairseq(tmp_path / "xlsr.pt", reference)
    state = torch.load(path, weights_only=True)["model"]
    assert "encoder.layers.0.fc1.weight" in state and "quantizer.vars" in state
    ours = XLSRModel(cfg).eval()
    load_pretrained(ours, path)
    wav = torch.randn(2, 4000)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(wav)[0][-1], reference.encode(wav)[0][-1], atol=1e-5, rtol=0)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(ours.state_dict()[name], tensor), name
