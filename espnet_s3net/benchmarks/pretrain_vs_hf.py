"""One pre-training step of our XLSR model vs transformers' Wav2Vec2ForPreTraining.

Both get the same architecture (a named config, converted to a Hugging Face config), the
same weights (ours imported from the HF model), the same batch, the same span masks and
the same distractor indices. A step is forward + backward + Adam step. Steps alternate
between the two models (after warm-up) and the median times are compared on one thread.

Peak memory: each contender runs one step in a fresh subprocess; the kernel's peak
resident set size is reset just before the step (``/proc/self/clear_refs``, Linux) and the
step's peak above the resident size before it (``VmHWM - VmRSS``) is compared, ours / HF.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List

import torch

from espnet_s3net.benchmarks._memory import peak_kb


def _hf_config(cfg):
    import transformers

    return transformers.Wav2Vec2Config(
        hidden_size=cfg.embed_dim, num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.ffn_dim, conv_dim=[c[0] for c in cfg.conv_layers],
        conv_kernel=[c[1] for c in cfg.conv_layers], conv_stride=[c[2] for c in cfg.conv_layers],
        conv_bias=cfg.conv_bias, feat_extract_norm="layer" if cfg.extractor_mode == "layer_norm" else "group",
        do_stable_layer_norm=cfg.layer_norm_first, num_conv_pos_embeddings=cfg.pos_conv_kernel,
        num_conv_pos_embedding_groups=cfg.pos_conv_groups, num_codevector_groups=cfg.latent_groups,
        num_codevectors_per_group=cfg.latent_vars, codevector_dim=cfg.final_dim, proj_codevector_dim=cfg.final_dim,
        num_negatives=cfg.num_negatives, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        feat_proj_dropout=0.0, feat_quantizer_dropout=0.0, layerdrop=0.0, mask_time_prob=cfg.mask_prob,
        mask_time_length=cfg.mask_length, diversity_loss_weight=cfg.diversity_weight,
        contrastive_logits_temperature=cfg.logit_temp,
    )


def build(config: str, batch: int, seconds: float):
    """(ours, hf, wav, mask, negatives for ours, negatives for HF)."""
    import transformers
    from transformers.models.wav2vec2.modeling_wav2vec2 import _sample_negative_indices

    from espnet_s3net.models.checkpoint_import import load_pretrained, read_huggingface_config
    from espnet_s3net.models.span_mask import span_mask
    from espnet_s3net.models.xlsr import XLSRModel, get_config

    cfg = get_config(config, dropout=0.0, attention_dropout=0.0, dropout_input=0.0, dropout_features=0.0,
                     layer_drop=0.0)
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForPreTraining(_hf_config(cfg)).train()
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = XLSRModel(read_huggingface_config(tmp))
        load_pretrained(ours, tmp)
    ours.cfg.feature_grad_mult = cfg.feature_grad_mult
    ours.train()
    wav = torch.randn(batch, int(16000 * seconds))
    frames = int(hf._get_feat_extract_output_lengths(wav.shape[1]))
    mask = span_mask(batch, frames, cfg.mask_prob, cfg.mask_length, cfg.min_masks,
                     generator=torch.Generator().manual_seed(1))
    hf_neg = torch.from_numpy(_sample_negative_indices((batch, frames), cfg.num_negatives,
                                                       mask_time_indices=mask.numpy()))
    # the same distractors in our indexing (positions among the masked frames of the batch)
    flat_pos = torch.full((batch * frames,), -1, dtype=torch.long)
    flat_pos[mask.reshape(-1).nonzero()[:, 0]] = torch.arange(int(mask.sum()))
    ours_neg = flat_pos[hf_neg.reshape(batch * frames, -1)[mask.reshape(-1)]]
    return ours, hf, wav, mask, ours_neg, hf_neg


def step_ours(model, optim, wav, mask, neg):
    optim.zero_grad(set_to_none=True)
    model.forward_pretrain(wav, mask_indices=mask, negative_indices=neg).loss.backward()
    optim.step()


def step_hf(model, optim, wav, mask, neg):
    optim.zero_grad(set_to_none=True)
    model(wav, mask_time_indices=mask, sampled_negative_indices=neg).loss.backward()
    optim.step()


def _peak_child(which: str, config: str, batch: int, seconds: float) -> None:
    ours, hf, wav, mask, ours_neg, hf_neg = build(config, batch, seconds)
    model, step, neg = (ours, step_ours, ours_neg) if which == "ours" else (hf, step_hf, hf_neg)
    del ours, hf
    optim = torch.optim.Adam(model.parameters(), lr=1e-5)
    step(model, optim, wav, mask, neg)  # optimizer state and allocator pools exist from here on
    print(json.dumps({"peak_kb": peak_kb(lambda: step(model, optim, wav, mask, neg))}))


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark pretrain_vs_hf", description=__doc__)
    parser.add_argument("--config", default="xlsr_small")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", choices=["ours", "hf"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.child:
        _peak_child(args.child, args.config, args.batch, args.seconds)
        sys.exit(0)
    ours, hf, wav, mask, ours_neg, hf_neg = build(args.config, args.batch, args.seconds)
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-5)
    opt_hf = torch.optim.Adam(hf.parameters(), lr=1e-5)
    step_ours(ours, opt_ours, wav, mask, ours_neg)
    step_hf(hf, opt_hf, wav, mask, hf_neg)
    t_ours, t_hf = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step_ours(ours, opt_ours, wav, mask, ours_neg)
        t_ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        step_hf(hf, opt_hf, wav, mask, hf_neg)
        t_hf.append(time.perf_counter() - start)
    peaks = {}
    for which in ("ours", "hf"):
        out = subprocess.run([sys.executable, "-m", "espnet_s3net.bin.benchmark", "pretrain_vs_hf", "--child", which,
                              "--config", args.config, "--batch", str(args.batch), "--seconds", str(args.seconds)],
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
        peaks[which] = json.loads(out.stdout.strip().splitlines()[-1])["peak_kb"]
    ratio = statistics.median(t_ours) / statistics.median(t_hf)
    return {"time_ratio": ratio, "ours_s": statistics.median(t_ours), "hf_s": statistics.median(t_hf),
            "peak_mem_ratio": peaks["ours"] / max(1, peaks["hf"]), "peak_kb": peaks,
            "target_time_ratio": 0.8, "meets_target": ratio <= 0.8, "config": args.config,
            "batch": args.batch, "seconds": args.seconds, "repeats": args.repeats, "threads": 1}
