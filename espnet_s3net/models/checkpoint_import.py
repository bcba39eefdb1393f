"""Start from public wav2vec 2.0 / XLSR checkpoints on local disk.

Two formats:
- a Hugging Face ``Wav2Vec2ForPreTraining`` (or ``Wav2Vec2Model``) directory:
  ``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``;
- a fairseq wav2vec 2.0 / XLSR ``.pt`` file (``{"cfg"|"args": ..., "model": state}``).

Encoder names follow torchaudio's, which equal Hugging Face's without the
``wav2vec2.`` prefix; the pre-training heads (quantizer, ``project_q``,
``final_proj`` = HF ``project_hid``, mask embedding = HF ``masked_spec_embed``) are
carried too, so pre-training can continue. The CTC head of a fine-tuned
``Wav2Vec2ForCTC`` directory (``lm_head``) is not part of the XLSR model and is skipped.
The inverse mappings (:func:`huggingface_state`, :func:`config_to_huggingface`) write our
models in Hugging Face's names (``espnet_s3net.bin.export_subnet``); both directions use
the one name table ``_HF_NAMES``.

A checkpoint carries its architecture (HF ``config.json``; fairseq ``cfg["model"]``, or
the ``args`` namespace of older files): :func:`read_checkpoint_config` gives it, with the
checkpoint's training settings, as an :class:`XLSRConfig`. Loading is strict: a config
that differs from the checkpoint's in an architecture field (``ARCHITECTURE_FIELDS``;
those of the pre-training heads only where the checkpoint holds the heads), a tensor
whose shape differs from the model's, or a model tensor the checkpoint lacks raises
``ValueError`` naming each.
"""

import argparse
import ast
import json
import os
import re
from typing import Dict, Optional, Tuple

import torch

from espnet_s3net.models.xlsr import ARCHITECTURE_FIELDS, HEAD_FIELDS, XLSRConfig, XLSRModel

# the pre-training heads and the mask embedding, which a fine-tuned or encoder-only
# checkpoint may lack; the encoder may not
_HEAD_PREFIXES = ("quantizer.", "project_q.", "final_proj.")
_OPTIONAL_PREFIXES = _HEAD_PREFIXES + ("mask_emb",)

_FAIRSEQ_RULES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^post_extract_proj\.", "encoder.feature_projection.projection."),
    (r"^layer_norm\.", "encoder.feature_projection.layer_norm."),
    (r"^encoder\.pos_conv\.0\.", "encoder.transformer.pos_conv_embed.conv."),
    (r"^encoder\.layer_norm\.", "encoder.transformer.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.", r"encoder.transformer.layers.\1.attention."),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.transformer.layers.\1.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.fc1\.", r"encoder.transformer.layers.\1.feed_forward.intermediate_dense."),
    (r"^encoder\.layers\.(\d+)\.fc2\.", r"encoder.transformer.layers.\1.feed_forward.output_dense."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.transformer.layers.\1.final_layer_norm."),
    (r"^quantizer\.vars$", "quantizer.codevectors"),
    (r"^quantizer\.weight_proj\.", "quantizer.weight_proj."),
    (r"^project_q\.", "project_q."),
    (r"^final_proj\.", "final_proj."),
    (r"^mask_emb$", "mask_emb"),
]
_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}


# (XLSRModel name prefix, Hugging Face name prefix, inside HF's ``wav2vec2.`` base model)
_HF_NAMES = (
    ("feature_extractor.", "feature_extractor.", True),
    ("encoder.feature_projection.", "feature_projection.", True),
    ("encoder.transformer.", "encoder.", True),
    ("mask_emb", "masked_spec_embed", True),
    ("quantizer.", "quantizer.", False),
    ("project_q.", "project_q.", False),
    ("final_proj.", "project_hid.", False),
)
_HF_BASE = "wav2vec2."
_HF_CTC_HEAD = "lm_head."


def convert_huggingface_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """HF ``Wav2Vec2ForPreTraining``/``Wav2Vec2Model``/``Wav2Vec2ForCTC`` state dict ->
    XLSRModel names (a CTC head is skipped; unknown keys are kept as-is and then reported
    by the strict load)."""
    out = {}
    for key, value in state.items():
        if key.startswith(_HF_CTC_HEAD):
            continue
        name = key[len(_HF_BASE):] if key.startswith(_HF_BASE) else key
        for ours, theirs, _ in _HF_NAMES:
            if name.startswith(theirs):
                name = ours + name[len(theirs):]
                break
        for old, new in _WEIGHT_NORM.items():
            name = name.replace(f"pos_conv_embed.conv.{old}", f"pos_conv_embed.conv.{new}")
        out[name] = value
    return out


def huggingface_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """XLSRModel state dict -> HF ``Wav2Vec2ForPreTraining`` names (the encoder under
    ``wav2vec2.``, as in ``Wav2Vec2ForCTC`` too); the inverse of
    :func:`convert_huggingface_state`. The quantizer's update counter (a training
    statistic HF does not keep) is dropped; a tensor without HF counterpart (e.g. language
    modules) raises ``ValueError`` naming it."""
    out = {}
    for name, value in state.items():
        if name == "quantizer.num_updates":
            continue
        for ours, theirs, in_base in _HF_NAMES:
            if name.startswith(ours):
                out[(_HF_BASE if in_base else "") + theirs + name[len(ours):]] = value
                break
        else:
            raise ValueError(f"tensor {name} of the XLSR model has no Hugging Face wav2vec2 counterpart")
    return out


def convert_fairseq_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """fairseq wav2vec 2.0 state dict -> XLSRModel names (unknown keys are kept as-is
    and then reported by the strict load)."""
    out = {}
    for key, value in state.items():
        name = key
        for pattern, repl in _FAIRSEQ_RULES:
            if re.search(pattern, name):
                name = re.sub(pattern, repl, name)
                break
        for old, new in _WEIGHT_NORM.items():
            name = name.replace(f"pos_conv_embed.conv.{old}", f"pos_conv_embed.conv.{new}")
        out[name] = value
    return out


def config_from_huggingface(config: Dict) -> XLSRConfig:
    """XLSRConfig matching a Hugging Face ``Wav2Vec2Config`` dict (``config.json``)."""
    conv = list(zip(config["conv_dim"], config["conv_kernel"], config["conv_stride"]))
    return XLSRConfig(
        extractor_mode="layer_norm" if config.get("feat_extract_norm") == "layer" else "group_norm",
        conv_layers=conv, conv_bias=config.get("conv_bias", False),
        embed_dim=config["hidden_size"], num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"], ffn_dim=config["intermediate_size"],
        pos_conv_kernel=config["num_conv_pos_embeddings"],
        pos_conv_groups=config["num_conv_pos_embedding_groups"],
        layer_norm_first=config.get("do_stable_layer_norm", False),
        dropout=config.get("hidden_dropout", 0.1), attention_dropout=config.get("attention_dropout", 0.1),
        activation_dropout=config.get("activation_dropout", 0.0),
        dropout_input=config.get("feat_proj_dropout", 0.0),
        dropout_features=config.get("feat_quantizer_dropout", 0.0),
        layer_drop=config.get("layerdrop", 0.0),
        final_dim=config.get("proj_codevector_dim", 256), codevector_dim=config.get("codevector_dim", 256),
        latent_groups=config.get("num_codevector_groups", 2),
        latent_vars=config.get("num_codevectors_per_group", 320),
        num_negatives=config.get("num_negatives", 100),
        logit_temp=config.get("contrastive_logits_temperature", 0.1),
        diversity_weight=config.get("diversity_loss_weight", 0.1),
        mask_prob=config.get("mask_time_prob", 0.65), mask_length=config.get("mask_time_length", 10),
        min_masks=config.get("mask_time_min_masks", 2),
    )


def config_to_huggingface(cfg: XLSRConfig) -> Dict:
    """``Wav2Vec2Config`` keyword arguments of ``cfg``; the inverse of
    :func:`config_from_huggingface` except for ``feature_grad_mult``, ``latent_temp`` and
    ``feature_penalty_weight``, which HF does not have (``codevector_dim`` is written resolved)."""
    return dict(
        feat_extract_norm="layer" if cfg.extractor_mode == "layer_norm" else "group",
        conv_dim=[c for c, _, _ in cfg.conv_layers], conv_kernel=[k for _, k, _ in cfg.conv_layers],
        conv_stride=[s for _, _, s in cfg.conv_layers], conv_bias=cfg.conv_bias,
        hidden_size=cfg.embed_dim, num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.ffn_dim, num_conv_pos_embeddings=cfg.pos_conv_kernel,
        num_conv_pos_embedding_groups=cfg.pos_conv_groups, do_stable_layer_norm=cfg.layer_norm_first,
        hidden_dropout=cfg.dropout, attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout, feat_proj_dropout=cfg.dropout_input,
        feat_quantizer_dropout=cfg.dropout_features, layerdrop=cfg.layer_drop,
        proj_codevector_dim=cfg.final_dim, codevector_dim=cfg.quantizer_dim,
        num_codevector_groups=cfg.latent_groups, num_codevectors_per_group=cfg.latent_vars,
        num_negatives=cfg.num_negatives, contrastive_logits_temperature=cfg.logit_temp,
        diversity_loss_weight=cfg.diversity_weight, mask_time_prob=cfg.mask_prob,
        mask_time_length=cfg.mask_length, mask_time_min_masks=cfg.min_masks,
    )


_FAIRSEQ_EXTRACTOR = {"default": "group_norm", "layer_norm": "layer_norm"}
# fairseq wav2vec 2.0 options XLSRModel implements one value of (checked where present)
_FAIRSEQ_FIXED = {
    "activation_fn": "gelu", "layer_type": "transformer", "pos_conv_depth": 1, "quantize_targets": True,
    "quantize_input": False, "target_glu": False, "quantizer_depth": 1,
}


def _fairseq_list(value, name: str) -> list:
    """A fairseq list option: as stored, or a Python expression of number, list and tuple
    literals with ``+`` and ``*``, e.g. ``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``."""
    if not isinstance(value, str):
        return list(value)

    def evaluate(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [evaluate(element) for element in node.elts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = evaluate(node.left), evaluate(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"fairseq {name} {value!r} is not a list of number literals")

    try:
        return evaluate(ast.parse(value, mode="eval").body)
    except SyntaxError as e:
        raise ValueError(f"fairseq {name} {value!r} is not a list of number literals") from e


def config_from_fairseq(config: Dict) -> XLSRConfig:
    """XLSRConfig matching a fairseq wav2vec 2.0 model config (``cfg["model"]``, or
    ``vars(args)`` of older checkpoints); a missing or unsupported option raises
    ``ValueError`` naming it."""
    model = config.get("_name", config.get("arch", "wav2vec2"))

    def get(name: str):
        if name not in config:
            raise ValueError(f"the fairseq model config ({model}) lacks {name!r}")
        return config[name]

    for name, value in _FAIRSEQ_FIXED.items():
        if name in config and config[name] != value:
            raise ValueError(f"fairseq {name}={config[name]!r} is not supported (XLSRModel has {name}={value!r})")
    extractor_mode = get("extractor_mode")
    if extractor_mode not in _FAIRSEQ_EXTRACTOR:
        raise ValueError(f"fairseq extractor_mode {extractor_mode!r} is not one of {list(_FAIRSEQ_EXTRACTOR)}")
    final_dim = get("final_dim") or get("encoder_embed_dim")  # fairseq: 0 = encoder_embed_dim
    return XLSRConfig(
        extractor_mode=_FAIRSEQ_EXTRACTOR[extractor_mode],
        conv_layers=_fairseq_list(get("conv_feature_layers"), "conv_feature_layers"),
        conv_bias=get("conv_bias"), embed_dim=get("encoder_embed_dim"), num_layers=get("encoder_layers"),
        num_heads=get("encoder_attention_heads"), ffn_dim=get("encoder_ffn_embed_dim"),
        pos_conv_kernel=get("conv_pos"), pos_conv_groups=get("conv_pos_groups"),
        layer_norm_first=get("layer_norm_first"), dropout=get("dropout"),
        attention_dropout=get("attention_dropout"), activation_dropout=get("activation_dropout"),
        dropout_input=get("dropout_input"), dropout_features=get("dropout_features"),
        layer_drop=get("encoder_layerdrop"), feature_grad_mult=get("feature_grad_mult"),
        final_dim=final_dim, codevector_dim=get("latent_dim") or None,  # fairseq: 0 = final_dim
        latent_groups=get("latent_groups"), latent_vars=get("latent_vars"),
        latent_temp=_fairseq_list(get("latent_temp"), "latent_temp"),
        mask_prob=get("mask_prob"), mask_length=get("mask_length"), num_negatives=get("num_negatives"),
        logit_temp=get("logit_temp"),
    )


def _read_huggingface(path: str) -> Dict[str, torch.Tensor]:
    safetensors = os.path.join(path, "model.safetensors")
    if os.path.isfile(safetensors):
        from safetensors.torch import load_file

        return load_file(safetensors)
    binary = os.path.join(path, "pytorch_model.bin")
    if os.path.isfile(binary):
        return torch.load(binary, map_location="cpu", weights_only=True)
    raise ValueError(f"{path} holds neither model.safetensors nor pytorch_model.bin")


def read_huggingface_config(path: str) -> XLSRConfig:
    """XLSRConfig of a Hugging Face model directory."""
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        raise ValueError(f"{path} is not a Hugging Face model directory (no config.json)")
    with open(config, encoding="utf-8") as f:
        return config_from_huggingface(json.load(f))


def _read_fairseq(path: str) -> Dict:
    """The fairseq checkpoint dict of ``path``."""
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{path} is not a fairseq checkpoint (no 'model' entry)")
    return ckpt


def _fairseq_config(ckpt: Dict, path: str) -> XLSRConfig:
    """:func:`config_from_fairseq` of a checkpoint's ``cfg["model"]`` or ``args``."""
    if ckpt.get("cfg") is not None:
        config = dict(ckpt["cfg"]["model"])
    elif isinstance(ckpt.get("args"), argparse.Namespace):
        config = vars(ckpt["args"])
    else:
        raise ValueError(f"fairseq checkpoint {path} holds no model config (neither 'cfg' nor 'args')")
    try:
        return config_from_fairseq(config)
    except ValueError as e:
        raise ValueError(f"checkpoint {path}: {e}") from e


def read_checkpoint_config(path: str) -> XLSRConfig:
    """Architecture and training settings of a HF directory or a fairseq ``.pt`` file."""
    if os.path.isdir(path):
        return read_huggingface_config(path)
    return _fairseq_config(_read_fairseq(path), path)


def read_checkpoint(path: str) -> Tuple[XLSRConfig, Dict[str, torch.Tensor]]:
    """Config (:func:`read_checkpoint_config`) and state dict in XLSRModel names of a HF
    directory or a fairseq ``.pt`` file, reading the file once."""
    if os.path.isdir(path):
        return read_huggingface_config(path), convert_huggingface_state(_read_huggingface(path))
    ckpt = _read_fairseq(path)
    return _fairseq_config(ckpt, path), convert_fairseq_state(ckpt["model"])


def _check_architecture(cfg: XLSRConfig, checkpoint_cfg: XLSRConfig, state: Dict[str, torch.Tensor],
                        path: str) -> None:
    """``ValueError`` naming every architecture field (with both values) where ``cfg``
    differs from the checkpoint's; the heads' fields count only if ``state`` holds heads."""
    ours, theirs = cfg.architecture(), checkpoint_cfg.architecture()
    has_heads = any(name.startswith(_HEAD_PREFIXES) for name in state)
    differing = [
        f"{name}: config {ours[name]!r}, checkpoint {theirs[name]!r}" for name in ARCHITECTURE_FIELDS
        if ours[name] != theirs[name] and (has_heads or name not in HEAD_FIELDS)
    ]
    if differing:
        raise ValueError(f"the XLSR config does not match the architecture of checkpoint {path}: "
                         + "; ".join(differing))


def _load_state(model: XLSRModel, state: Dict[str, torch.Tensor], path: str) -> None:
    """Load ``state`` into ``model``, strictly (see the module docstring)."""
    own = model.state_dict()
    for name, tensor in own.items():
        if name == "quantizer.num_updates":
            continue
        if name not in state:
            if name.startswith(_OPTIONAL_PREFIXES):
                continue
            raise ValueError(f"checkpoint {path} lacks tensor {name} (shape {tuple(tensor.shape)})")
        if state[name].shape != tensor.shape:
            raise ValueError(
                f"checkpoint {path} does not match the model config: tensor {name} has shape "
                f"{tuple(state[name].shape)}, the model expects {tuple(tensor.shape)}"
            )
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"checkpoint {path} has tensors the model does not know, first: {unknown[0]}")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def load_pretrained(model: XLSRModel, path: str) -> None:
    """Load a public checkpoint into ``model``, strictly (see the module docstring)."""
    checkpoint_cfg, state = read_checkpoint(path)
    _check_architecture(model.cfg, checkpoint_cfg, state, path)
    _load_state(model, state, path)


def from_checkpoint(path: str, cfg: Optional[XLSRConfig] = None) -> XLSRModel:
    """XLSRModel loaded from a public checkpoint: with ``cfg`` (checked against the
    checkpoint's architecture; its training settings are kept) or, if None, with the
    checkpoint's own config."""
    checkpoint_cfg, state = read_checkpoint(path)
    if cfg is None:
        cfg = checkpoint_cfg
    else:
        _check_architecture(cfg, checkpoint_cfg, state, path)
    model = XLSRModel(cfg)
    _load_state(model, state, path)
    return model
