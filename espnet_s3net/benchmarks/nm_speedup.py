"""XLSR forward with 2:4 semi-structured sparse weights vs dense masked weights (CUDA GPU).

For each of ``--configs``: XLSR (randomly initialised: speed does not depend on the
weights) in ``--dtype`` on the GPU, one language's 2:4 masks by weight magnitude (every
prunable transformer linear), under ``torch.no_grad()`` as in decoding. Three arms:

- ``masked``: the decoding path, :class:`MaskedLinear` layers computing ``W ⊙ m`` at every
  forward (``use_language``);
- ``dense``: plain ``nn.Linear`` layers holding ``W ⊙ m`` (an exported sub-network: the
  dense product alone);
- ``sparse``: ``espnet_s3net.asr.sparse_kernels.use_sparse_kernels`` (``to_sparse_semi_structured``).

Two parts are timed: ``encoder``, ``model.encode`` of a fixed batch of ``--batch``
utterances of ``--seconds`` s without padding (conv features + transformer, what decoding
runs), and ``transformer``, the part the kernels change (from precomputed conv features).
After ``--warmup`` calls of each arm, every one of ``--repeats`` rounds times one call per
arm (order reversed every round, CUDA synchronized around each). Per part: median times
(ms), ``ratio`` = median over rounds of sparse / masked (below 1: the kernels are faster)
and ``ratio_vs_dense`` = sparse / dense.

Nothing is measured without a CUDA device (the kernels exist only there) or where
``use_sparse_kernels`` falls back: the result then says ``measured: false`` and why.
"""

import argparse
import copy
import statistics
from functools import partial
from typing import Dict, List

import torch

from espnet_s3net.benchmarks._timing import timed

ARMS = ("masked", "dense", "sparse")
LANG = "l0"


class NotMeasured(Exception):
    """The sparse kernels cannot run here (the message says why)."""


def _arms(config: str, device: str, dtype: torch.dtype) -> Dict[str, torch.nn.Module]:
    """The three arms of one XLSR model (see the module docstring); raises NotMeasured with
    the reason the sparse kernels cannot be used."""
    from espnet_s3net.asr.inference import use_language
    from espnet_s3net.asr.sparse_kernels import PATTERN, use_sparse_kernels
    from espnet_s3net.masks.language_masker import attach_masker
    from espnet_s3net.masks.mask_file import SubnetMasks
    from espnet_s3net.masks.pruning import masks_from_scores, prunable_parameters
    from espnet_s3net.models.xlsr import XLSRModel, get_config

    torch.manual_seed(0)
    masked = XLSRModel(get_config(config)).eval().to(device, dtype)
    params = prunable_parameters(masked)
    keep = masks_from_scores({n: p.detach().abs() for n, p in params.items()}, 0.5, "layerwise", PATTERN)
    masks = SubnetMasks.from_dense({LANG: keep}, {"pattern": PATTERN})
    dense, sparse = copy.deepcopy(masked), copy.deepcopy(masked)
    dense_params = dict(dense.named_parameters())
    with torch.no_grad():
        for name, mask in keep.items():
            dense_params[name].mul_(mask)
    for model in (masked, sparse):
        attach_masker(model, masks)
        use_language(model, LANG)
    reason = use_sparse_kernels(sparse, LANG)
    if reason is not None:
        raise NotMeasured(reason)
    return {"masked": masked, "dense": dense, "sparse": sparse}


@torch.no_grad()
def _measure(config: str, args, dtype: torch.dtype) -> dict:
    """Median ms per arm and the ratios, per part, for one config."""
    arms = _arms(config, args.device, dtype)
    samples = int(16000 * args.seconds)
    wav = torch.randn(args.batch, samples, generator=torch.Generator().manual_seed(1)).to(args.device, dtype)
    features, _ = arms["masked"].extract_features(wav)
    parts = {"encoder": lambda model: model.encode(wav),
             "transformer": lambda model: model.encode_features(features, None)}
    result = {}
    for part, call in parts.items():
        for _ in range(args.warmup):
            for model in arms.values():
                call(model)
        times = {arm: [] for arm in ARMS}
        for repeat in range(args.repeats):
            for arm in ARMS if repeat % 2 else reversed(ARMS):  # no arm always runs first
                times[arm].append(timed(partial(call, arms[arm]), args.device))
        result[part] = {
            **{f"{arm}_ms": 1000 * statistics.median(times[arm]) for arm in ARMS},
            "ratio": statistics.median(s / m for s, m in zip(times["sparse"], times["masked"])),
            "ratio_vs_dense": statistics.median(s / d for s, d in zip(times["sparse"], times["dense"])),
        }
    return result


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark nm_speedup", description=__doc__)
    parser.add_argument("--configs", nargs="+", default=["xlsr_base", "xlsr_large"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cuda", help="cuda[:N]; anything else measures nothing")
    args = parser.parse_args(argv)
    setting = {"device": args.device, "dtype": args.dtype, "batch": args.batch, "seconds": args.seconds,
               "repeats": args.repeats}
    if not (args.device.startswith("cuda") and torch.cuda.is_available()):
        return {"measured": False, "reason": "no CUDA device: semi-structured sparse kernels need a GPU", **setting}
    try:
        configs = {config: _measure(config, args, getattr(torch, args.dtype)) for config in args.configs}
    except NotMeasured as exc:
        return {"measured": False, "reason": str(exc), **setting}
    return {"measured": True, "gpu": torch.cuda.get_device_name(args.device), "configs": configs,
            "torch": torch.__version__, **setting}
