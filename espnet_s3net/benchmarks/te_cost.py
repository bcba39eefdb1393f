"""Cost of Taylor-importance (TE) extraction vs training steps of the same model and batch.

TE over B batches (forward + backward, accumulating gradients, then (g·θ)^2 per prunable
tensor and the masks) is timed against B training steps (forward + backward + Adam step)
on the same model and batches, alternately, median of ``--repeats``; target ratio ≤ 1.2.
"""

import argparse
import statistics
import time
from typing import List

import torch


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark te_cost", description=__doc__)
    parser.add_argument("--config", default="xlsr_small")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from espnet_s3net.masks.extraction import taylor_importance
    from espnet_s3net.masks.pruning import masks_from_scores, prunable_parameters
    from espnet_s3net.models.pretrain_model import XLSRPretrainModel

    torch.manual_seed(0)
    model = XLSRPretrainModel({"name": args.config})
    params = prunable_parameters(model.xlsr)
    samples = int(16000 * args.seconds)
    batches = [(torch.randn(args.batch, samples), torch.full((args.batch,), samples)) for _ in range(args.batches)]
    optim = torch.optim.Adam(model.parameters(), lr=1e-5)
    device = torch.device("cpu")

    def te():
        masks_from_scores(taylor_importance(model, params, batches, device), 0.5, "layerwise")

    def train():
        model.train()
        for speech, lengths in batches:
            optim.zero_grad(set_to_none=True)
            model(speech, lengths)[0].backward()
            optim.step()

    te(), train()  # warm-up
    t_te, t_train = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        te()
        t_te.append(time.perf_counter() - start)
        start = time.perf_counter()
        train()
        t_train.append(time.perf_counter() - start)
    ratio = statistics.median(t_te) / statistics.median(t_train)
    return {"ratio": ratio, "te_s": statistics.median(t_te), "train_s": statistics.median(t_train),
            "target": 1.2, "meets_target": ratio <= 1.2, "config": args.config, "batches": args.batches,
            "repeats": args.repeats, "threads": 1}
