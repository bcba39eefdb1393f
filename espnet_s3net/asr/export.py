"""Export one language's sub-network of an ESPnet ASR model with the ``s3net`` frontend.

For language ``L`` every prunable weight becomes ``W ⊙ m^L`` (the pruned entries are stored
as zeros), which is what the shared model computes with ``L``'s mask active: the exported
models need neither the mask file nor a language input. Written into ``output_dir``:

- ``espnet/config.yaml`` + ``espnet/model.pth``: the ESPnet model, its ``frontend_conf``
  without ``mask_file``; ``espnet.zip``: the same packed by ESPnet's packer
  (``espnet2.main_funcs.pack_funcs.pack``), for ``Speech2Text`` after ``unpack``;
- ``hf/``: a Hugging Face ``Wav2Vec2ForCTC`` directory (``config.json``,
  ``model.safetensors``, ``vocab.json``, tokenizer and feature-extractor configs) with the
  ESPnet CTC head as ``lm_head`` and the ESPnet token list as vocabulary (blank = pad);
- ``sizes.json``: storage of the model dense, masked, and with the prunable tensors sparse
  (:func:`storage_sizes`).

A Wav2Vec2ForCTC is XLSR's last layer followed by a linear CTC head, on the raw waveform
(our frontend does not normalise it: ``do_normalize`` is false). A model with more than
that (:func:`huggingface_blockers`) is exported for ESPnet only. Language modules
(adapters, gates) need the language at run time and cannot be baked into either format.
"""

import argparse
import importlib.util
import json
import logging
import math
import os
from typing import Dict, List, Optional, Sequence

import torch
import yaml

from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.masks.pruning import UNSTRUCTURED, parse_pattern
from espnet_s3net.models.checkpoint_import import config_to_huggingface, huggingface_state

FORMATS = ("espnet", "hf")
#: frontend options that attach the masks: dropped from the exported config
_MASK_OPTIONS = ("mask_file", "mask_missing")
#: ESPnet token types an HF CTC tokenizer turns into the same text: phones or words separated
#: by spaces (``word``), characters with ``<space>`` between words (``char``)
_HF_TOKEN_TYPES = ("word", "char")
_SPACE = "<space>"


def huggingface_blockers(config: Dict) -> List[str]:
    """Why the ESPnet ASR model of ``config`` (a ``config.yaml`` dict) cannot become a
    ``Wav2Vec2ForCTC``: one reason per part HF's model lacks; empty if it can."""
    reasons = []
    selection = (config.get("frontend_conf") or {}).get("layer_selection", "last")
    if selection != "last":
        reasons.append(f"layer_selection: {selection} (Wav2Vec2ForCTC's head reads the last layer only)")
    if config.get("encoder") != "passthrough":
        reasons.append(f"encoder: {config.get('encoder')} (Wav2Vec2ForCTC has its CTC head directly on XLSR, "
                       "as encoder: passthrough)")
    for part in ("normalize", "preencoder", "postencoder"):
        if config.get(part) is not None:
            reasons.append(f"{part}: {config[part]} (Wav2Vec2ForCTC has no {part})")
    if config.get("token_type") not in _HF_TOKEN_TYPES:
        reasons.append(f"token_type: {config.get('token_type')} (HF's CTC tokenizers join tokens as ESPnet's "
                       f"{' and '.join(_HF_TOKEN_TYPES)} token types do)")
    return reasons


def storage_sizes(weights: Dict[str, torch.Tensor], keep: Dict[str, torch.Tensor],
                  pattern: str = UNSTRUCTURED) -> Dict[str, int]:
    """Bytes of the tensors ``weights`` (each (rows, ...)) stored dense, as CSR (kept values
    + int32 column indices + int32 row pointers, rows = first dimension) and as a bitmask
    (1 bit per weight) + kept values; ``keep``: bool masks of the same shapes. With an N:M
    ``pattern`` also the semi-structured layout: kept values + ceil(log2 m) bits per kept
    value for its position in its group (2:4: the 2-bit metadata of sparse tensor cores)."""
    index = torch.int32.itemsize
    dense = csr = bitmask = kept = values = 0
    for name, weight in weights.items():
        nnz = int(keep[name].sum())
        value = weight.element_size()
        kept += nnz
        values += nnz * value
        dense += weight.numel() * value
        csr += nnz * (value + index) + (weight.shape[0] + 1) * index
        bitmask += (weight.numel() + 7) // 8 + nnz * value
    sizes = {"weights": sum(w.numel() for w in weights.values()), "kept": kept, "dense_bytes": dense,
             "csr_bytes": csr, "bitmask_bytes": bitmask}
    nm = parse_pattern(pattern)
    if nm is not None:
        sizes["semi_structured_bytes"] = values + (kept * math.ceil(math.log2(nm[1])) + 7) // 8
    return sizes


def _build_masked(config: Dict, asr_model_file: str, masks: SubnetMasks, lang: str):
    """(model, config, masks): the ESPnet model of ``config`` (which has no mask options) in
    eval mode, holding ``W ⊙ m^lang``; the config as the task's ``build_model`` leaves it
    (portable, as training writes it); ``lang``'s bool masks by prunable tensor name."""
    from espnet_s3net.tasks.asr import S3NetASRTask

    keep = masks.dense(lang)   # an unknown language raises here, listing the file's
    args = argparse.Namespace(**config)
    model = S3NetASRTask.build_model(args)
    model.load_state_dict(torch.load(asr_model_file, map_location="cpu", weights_only=True))
    xlsr = model.frontend.xlsr
    masks.check_model(xlsr)
    params = dict(xlsr.named_parameters())
    with torch.no_grad():
        for name, mask in keep.items():
            params[name].masked_fill_(~mask, 0.0)
    return model.eval(), vars(args), keep


def _export_espnet(model, config: Dict, output_dir: str) -> Dict[str, int]:
    """``output_dir/espnet/{config.yaml,model.pth}`` and their pack ``output_dir/espnet.zip``;
    returns the file sizes."""
    from espnet2.main_funcs.pack_funcs import pack
    from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

    directory = os.path.join(output_dir, "espnet")
    os.makedirs(directory, exist_ok=True)
    config_path, model_path = os.path.join(directory, "config.yaml"), os.path.join(directory, "model.pth")
    with open(config_path, "w", encoding="utf-8") as f:
        yaml_no_alias_safe_dump(config, f, indent=4, sort_keys=False)
    torch.save(model.state_dict(), model_path)
    archive = os.path.join(output_dir, "espnet.zip")
    pack(files={"asr_model_file": model_path}, yaml_files={"asr_train_config": config_path}, outpath=archive,
         option=_pack_options(config))
    return {"masked_model_file_bytes": os.path.getsize(model_path), "espnet_zip_bytes": os.path.getsize(archive)}


def _pack_options(config: Dict) -> List[str]:
    """Files besides config and model that decoding reads (as ESPnet's asr.sh packs them)."""
    options = []
    if config.get("token_type") == "bpe" and config.get("bpemodel"):
        options.append(config["bpemodel"])
    stats_file = (config.get("normalize_conf") or {}).get("stats_file")
    if config.get("normalize") == "global_mvn" and stats_file:
        options.append(stats_file)
    return options


def huggingface_tokenizer(token_list: Sequence[str], token_type: str, vocab_file: str, blank_id: int, sos: int,
                          eos: int):
    """An HF CTC tokenizer of an ESPnet token list (written to ``vocab_file``), decoding as
    ESPnet's ``token_type`` does: ``word`` -> tokens joined by spaces
    (``Wav2Vec2PhonemeCTCTokenizer``, no phonemizer), ``char`` -> characters joined, with
    ``<space>`` as the space (``Wav2Vec2CTCTokenizer``). The blank is the pad token."""
    import transformers

    with open(vocab_file, "w", encoding="utf-8") as f:
        json.dump({token: i for i, token in enumerate(token_list)}, f, ensure_ascii=False, indent=1)
    special = {"pad_token": token_list[blank_id], "bos_token": token_list[sos], "eos_token": token_list[eos],
               "unk_token": "<unk>" if "<unk>" in token_list else None}
    if token_type == "word":
        return transformers.Wav2Vec2PhonemeCTCTokenizer(
            vocab_file, do_phonemize=False, phone_delimiter_token=" ", word_delimiter_token=None, **special)
    if token_type == "char":
        return transformers.Wav2Vec2CTCTokenizer(vocab_file, word_delimiter_token=_SPACE, **special)
    raise ValueError(f"token_type {token_type!r} has no HF CTC tokenizer; one of {', '.join(_HF_TOKEN_TYPES)}")


def _export_huggingface(model, config: Dict, output_dir: str) -> Dict[str, int]:
    """``output_dir/hf``: Wav2Vec2ForCTC weights and config, tokenizer and feature extractor;
    returns the weights' file size."""
    import transformers

    directory = os.path.join(output_dir, "hf")
    frontend, token_list = model.frontend, list(model.token_list)
    hf_config = transformers.Wav2Vec2Config(**{
        **config_to_huggingface(frontend.xlsr.cfg),
        # the fine-tuning SpecAugment of the frontend, not the pre-training masking
        "mask_time_prob": frontend.mask_time_prob, "mask_time_length": frontend.mask_time_length,
        "mask_feature_prob": frontend.mask_channel_prob, "mask_feature_length": frontend.mask_channel_length,
        "vocab_size": len(token_list), "pad_token_id": model.blank_id, "bos_token_id": model.sos,
        "eos_token_id": model.eos, "final_dropout": model.ctc.dropout_rate,
        # HF's per-target-length mean (its fine-tuning default); ESPnet sums per utterance and
        # averages over the batch, which no HF reduction reproduces
        "ctc_loss_reduction": "mean",
        "ctc_zero_infinity": getattr(model.ctc.ctc_loss, "zero_infinity", True),
    })
    hf_model = transformers.Wav2Vec2ForCTC(hf_config)
    state = huggingface_state(frontend.xlsr.state_dict())
    state.update({"lm_head.weight": model.ctc.ctc_lo.weight, "lm_head.bias": model.ctc.ctc_lo.bias})
    if "wav2vec2.masked_spec_embed" not in hf_model.state_dict():  # HF has it only with SpecAugment
        del state["wav2vec2.masked_spec_embed"]
    hf_model.load_state_dict(state)
    hf_model.save_pretrained(directory)

    tokenizer = huggingface_tokenizer(token_list, config["token_type"], os.path.join(directory, "vocab.json"),
                                      model.blank_id, model.sos, model.eos)
    # our frontend masks the padded frames in attention: HF needs the attention mask to match
    feature_extractor = transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=False, return_attention_mask=True)
    transformers.Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(directory)
    return {"hf_safetensors_bytes": os.path.getsize(os.path.join(directory, "model.safetensors"))}


def export_subnet(asr_train_config: str, asr_model_file: str, lang: str, output_dir: str,
                  mask_file: Optional[str] = None, formats: Sequence[str] = FORMATS) -> Dict:
    """Export ``lang``'s sub-network in ``formats`` into ``output_dir`` (see the module
    docstring); ``mask_file`` replaces the config's. Returns what ``sizes.json`` holds.
    Raises ``ValueError`` (nothing written) for a model without sub-networks, with language
    modules, a language without a mask, or ``hf`` for a model HF cannot hold."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}, got {', '.join(formats) or 'none'}")
    with open(asr_train_config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    frontend_conf = config.get("frontend_conf") or {}
    if config.get("frontend") != "s3net":
        raise ValueError(f"{asr_train_config}: frontend {config.get('frontend')}, not s3net: no sub-networks")
    if frontend_conf.get("language_modules"):
        raise ValueError(f"{asr_train_config}: the model has language modules "
                         f"({frontend_conf['language_modules'].get('type')}), which need the language at run "
                         "time: a single-language export cannot hold them")
    if "hf" in formats:
        if importlib.util.find_spec("transformers") is None:
            raise ValueError("--format hf needs the transformers package (pip install transformers), "
                             "or export with --format espnet")
        reasons = huggingface_blockers(config)
        if reasons:
            raise ValueError(f"{asr_train_config} cannot become a Hugging Face Wav2Vec2ForCTC: "
                             f"{'; '.join(reasons)} (export it with --format espnet)")
    mask_file = mask_file or frontend_conf.get("mask_file")
    if mask_file is None:
        raise ValueError(f"{asr_train_config} has no mask_file in frontend_conf and none was given: "
                         "the model has no sub-networks to export")
    masks = SubnetMasks.load(mask_file)
    config["frontend_conf"] = {k: v for k, v in frontend_conf.items() if k not in _MASK_OPTIONS}
    model, config, keep = _build_masked(config, asr_model_file, masks, lang)

    os.makedirs(output_dir, exist_ok=True)
    xlsr_params = dict(model.frontend.xlsr.named_parameters())
    prunable = storage_sizes({name: xlsr_params[name] for name in keep}, keep, masks.pattern)
    model_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    sizes = {
        "lang": lang, "mask_file": mask_file, "prunable_weights": prunable["weights"],
        "kept_weights": prunable["kept"], "sparsity": 1.0 - prunable["kept"] / prunable["weights"],
        "dense_model_file_bytes": os.path.getsize(asr_model_file),
        "model_tensor_bytes": model_bytes,
        "prunable_dense_bytes": prunable["dense_bytes"],
        "prunable_csr_bytes": prunable["csr_bytes"],
        "prunable_bitmask_bytes": prunable["bitmask_bytes"],
        "model_csr_bytes": model_bytes - prunable["dense_bytes"] + prunable["csr_bytes"],
        "model_bitmask_bytes": model_bytes - prunable["dense_bytes"] + prunable["bitmask_bytes"],
    }
    if "semi_structured_bytes" in prunable:  # an N:M mask file
        sizes["pattern"] = masks.pattern
        sizes["prunable_semi_structured_bytes"] = prunable["semi_structured_bytes"]
        sizes["model_semi_structured_bytes"] = model_bytes - prunable["dense_bytes"] + prunable["semi_structured_bytes"]
    if "espnet" in formats:
        sizes.update(_export_espnet(model, config, output_dir))
    if "hf" in formats:
        if model.decoder is not None:
            logging.warning(f"the attention decoder ({config['decoder']}) is not exported: the Hugging Face "
                            "model is the CTC branch")
        sizes.update(_export_huggingface(model, config, output_dir))
    with open(os.path.join(output_dir, "sizes.json"), "w", encoding="utf-8") as f:
        json.dump(sizes, f, indent=1)
    mb = {k: f"{v / 1e6:.3f} MB" for k, v in sizes.items() if k.endswith("_bytes")}
    logging.info(f"exported {lang} into {output_dir}: {sizes['sparsity']:.1%} of {sizes['prunable_weights']} "
                 f"prunable weights pruned; model file dense {mb['dense_model_file_bytes']}, masked "
                 f"{mb.get('masked_model_file_bytes', '(not written)')}; prunable tensors dense "
                 f"{mb['prunable_dense_bytes']}, CSR {mb['prunable_csr_bytes']}, bitmask + values "
                 f"{mb['prunable_bitmask_bytes']}; all tensors with the prunable ones as CSR "
                 f"{mb['model_csr_bytes']}, as bitmask + values {mb['model_bitmask_bytes']} "
                 f"(dense {mb['model_tensor_bytes']})")
    return sizes
