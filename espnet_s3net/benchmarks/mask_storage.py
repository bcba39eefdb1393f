"""Mask file size and load-and-apply time on an ``xlsr_base`` (~95M) model.

Builds random layerwise masks (``--sparsity``) for ``--langs`` languages over the default
prunable tensors of xlsr_base, writes the mask file and reports its size in bits per
prunable weight per language (target ≤ 1.01), and the median time to load the file and
put one language on the model's weights (``LanguageMasker.activate``), in milliseconds.
"""

import argparse
import os
import statistics
import tempfile
import time
from typing import List


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark mask_storage", description=__doc__)
    parser.add_argument("--config", default="xlsr_base")
    parser.add_argument("--langs", type=int, default=10)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from espnet_s3net.masks.language_masker import LanguageMasker
    from espnet_s3net.masks.mask_file import SubnetMasks
    from espnet_s3net.masks.pruning import prunable_parameters, random_masks
    from espnet_s3net.models.xlsr import XLSRModel, get_config

    model = XLSRModel(get_config(args.config))
    params = prunable_parameters(model)
    numel = sum(p.numel() for p in params.values())
    langs = [f"lang{i}" for i in range(args.langs)]
    dense = {lang: random_masks(params, args.sparsity, "layerwise", seed=i) for i, lang in enumerate(langs)}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "masks.pt")
        SubnetMasks.from_dense(dense, {"method": "random"}).save(path)
        size_bits = os.path.getsize(path) * 8
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            masker = LanguageMasker(model, SubnetMasks.load(path))
            masker.activate(langs[0])
            times.append(time.perf_counter() - start)
            masker.deactivate()
    bits = size_bits / (numel * args.langs)
    return {"bits_per_weight_per_language": bits, "target_bits": 1.01, "meets_target": bits <= 1.01,
            "file_bytes": size_bits // 8, "prunable_weights": numel, "languages": args.langs,
            "load_apply_ms": 1000 * statistics.median(times), "config": args.config}
