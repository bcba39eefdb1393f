"""Start from public wav2vec 2.0 / XLSR checkpoints on local disk.

Two formats:
- a Hugging Face ``Wav2Vec2ForPreTraining`` (or ``Wav2Vec2Model``) directory:
  ``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``;
- a fairseq wav2vec 2.0 / XLSR ``.pt`` file (``{"cfg"|"args": ..., "model": state}``).

Encoder names follow torchaudio's, which equal Hugging Face's without the
``wav2vec2.`` prefix; the pre-training heads (quantizer, ``project_q``,
``final_proj`` = HF ``project_hid``, mask embedding = HF ``masked_spec_embed``) are
carried too, so pre-training can continue. Loading is strict: a tensor whose shape
differs from the model's, or a model tensor the checkpoint lacks, raises
``ValueError`` naming it.
"""

import json
import os
import re
from typing import Dict

import torch

from espnet_s3net.models.xlsr import XLSRConfig, XLSRModel

# heads that a fine-tuned or encoder-only checkpoint may lack; the encoder may not
_OPTIONAL_PREFIXES = ("quantizer.", "project_q.", "final_proj.", "mask_emb")

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


def convert_huggingface_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """HF ``Wav2Vec2ForPreTraining``/``Wav2Vec2Model`` state dict -> XLSRModel names."""
    out = {}
    for key, value in state.items():
        name = key[len("wav2vec2."):] if key.startswith("wav2vec2.") else key
        if name.startswith("encoder.") and not name.startswith("encoder.transformer."):
            name = "encoder.transformer." + name[len("encoder."):]
        elif name.startswith("feature_projection."):
            name = "encoder." + name
        name = {"masked_spec_embed": "mask_emb"}.get(name, name)
        name = name.replace("project_hid.", "final_proj.")
        for old, new in _WEIGHT_NORM.items():
            name = name.replace(f"pos_conv_embed.conv.{old}", f"pos_conv_embed.conv.{new}")
        out[name] = value
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
        final_dim=config.get("proj_codevector_dim", 256),
        latent_groups=config.get("num_codevector_groups", 2),
        latent_vars=config.get("num_codevectors_per_group", 320),
        num_negatives=config.get("num_negatives", 100),
        logit_temp=config.get("contrastive_logits_temperature", 0.1),
        diversity_weight=config.get("diversity_loss_weight", 0.1),
        mask_prob=config.get("mask_time_prob", 0.65), mask_length=config.get("mask_time_length", 10),
        min_masks=config.get("mask_time_min_masks", 2),
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


def read_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """State dict in XLSRModel names from a HF directory or a fairseq ``.pt`` file."""
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ValueError(f"{path} is not a Hugging Face model directory (no config.json)")
        return convert_huggingface_state(_read_huggingface(path))
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{path} is not a fairseq checkpoint (no 'model' entry)")
    return convert_fairseq_state(ckpt["model"])


def load_pretrained(model: XLSRModel, path: str) -> None:
    """Load a public checkpoint into ``model``, strictly (see the module docstring)."""
    state = read_checkpoint(path)
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


def read_huggingface_config(path: str) -> XLSRConfig:
    """XLSRConfig of a Hugging Face model directory."""
    with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
        return config_from_huggingface(json.load(f))
