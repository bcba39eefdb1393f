"""Masked (S3Net) training step vs dense step on the same model and batch.

The masked step switches language every step (the worst case: restore the previous
sub-network, put on the next one) and includes the gradient hooks and the post-step
re-masking; the dense step is the same model without masks. Steps alternate, median of
``--repeats``, one thread. Peak memory: the masker's extra memory is the kept copy of
the prunable weights plus the unpacked masks, reported against the dense step's peak
(measured like ``pretrain_vs_hf``: reset peak RSS, ``VmHWM - VmRSS`` over a step).
"""

import argparse
import statistics
import time
from typing import List

import torch

from espnet_s3net.benchmarks._memory import peak_kb


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark masked_step", description=__doc__)
    parser.add_argument("--config", default="xlsr_small")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--langs", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from espnet_s3net.masks.mask_file import SubnetMasks
    from espnet_s3net.masks.pruning import prunable_parameters, random_masks
    from espnet_s3net.models.pretrain_model import XLSRPretrainModel
    from espnet_s3net.train.language_masker import LanguageMasker

    torch.manual_seed(0)
    model = XLSRPretrainModel({"name": args.config}).train()
    params = prunable_parameters(model.xlsr)
    langs = [f"l{i}" for i in range(args.langs)]
    masks = SubnetMasks.from_dense({lang: random_masks(params, 0.5, "layerwise", i) for i, lang in enumerate(langs)}, {})
    samples = int(16000 * args.seconds)
    speech, lengths = torch.randn(args.batch, samples), torch.full((args.batch,), samples)
    optim = torch.optim.Adam(model.parameters(), lr=1e-5)

    def dense_step():  # ESPnet's order: backward, step, zero_grad
        model(speech, lengths)[0].backward()
        optim.step()
        optim.zero_grad(set_to_none=True)

    masker = None
    turn = [0]

    def masked_step():
        masker.activate(langs[turn[0] % len(langs)])
        turn[0] += 1
        dense_step()

    dense_step()
    dense_peak = peak_kb(dense_step)
    masker = LanguageMasker(model.xlsr, masks)
    masker.attach_optimizer(optim)
    for lang in langs:  # unpack every language once (cached on the device), as in training
        masker.activate(lang)
        masker.deactivate()
    masked_step()
    masked_peak = peak_kb(masked_step)
    t_dense, t_masked = [], []
    for _ in range(args.repeats):
        masker.deactivate()
        # the dense contender: no active mask, the hooks pass gradients through
        start = time.perf_counter()
        dense_step()
        t_dense.append(time.perf_counter() - start)
        start = time.perf_counter()
        masked_step()
        t_masked.append(time.perf_counter() - start)
    masker.deactivate()
    ratio = statistics.median(t_masked) / statistics.median(t_dense)
    return {"time_ratio": ratio, "masked_s": statistics.median(t_masked), "dense_s": statistics.median(t_dense),
            "peak_mem_ratio": masked_peak / max(1, dense_peak), "peak_kb": {"masked": masked_peak, "dense": dense_peak},
            "target": 1.03, "meets_target": ratio <= 1.03, "config": args.config,
            "prunable_weights": masks.numel, "languages": args.langs, "repeats": args.repeats, "threads": 1}
