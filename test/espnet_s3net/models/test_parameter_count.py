"""Parameter counts (the paper's #params column) against counts made another way."""

import pytest
import torch

from espnet_s3net.asr.frontend.s3net import S3NetFrontend
from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.masks.pruning import prunable_parameters, random_masks
from espnet_s3net.models.parameter_count import count_parameters, format_millions
from espnet_s3net.models.pretrain_model import XLSRPretrainModel, build_xlsr
from espnet_s3net.models.xlsr import get_config

XLSR10 = "es fr it ky nl ru sv tr tt zh".split()


def _by_name(model, prefix):
    """Parameters counted from the state dict's names (float tensors only, no buffers)."""
    buffers = {name for name, _ in model.named_buffers()}
    return sum(v.numel() for k, v in model.state_dict().items()
               if (k == prefix or k.startswith(f"{prefix}.") or not prefix) and k not in buffers)


@pytest.mark.parametrize("kind", ["adapter", "gating"])
def test_counts_agree_with_the_state_dict_and_the_formula(kind):
    conf = {"type": kind, "languages": ["es", "fr", "ky"], **({"bottleneck": 16} if kind == "adapter" else {})}
    model = XLSRPretrainModel({"name": "xlsr_tiny"}, language_modules=conf)
    plain = XLSRPretrainModel({"name": "xlsr_tiny"})
    count = count_parameters(model)
    cfg = get_config("xlsr_tiny")
    d, layers = cfg.embed_dim, cfg.num_layers
    own = layers * (d * 16 + 16 + 16 * d + d + 2 * d) if kind == "adapter" else layers * d
    assert count.method == kind and count.per_language == {"es": own, "fr": own, "ky": own}
    assert count.shared == sum(p.numel() for p in plain.parameters())
    assert count.total == count.shared + 3 * own == _by_name(model, "")
    group = "adapters" if kind == "adapter" else "gates"
    for lang in ("es", "fr", "ky"):
        assert _by_name(model, f"xlsr.language_modules.{group}.{lang}") == count.per_language[lang]
        assert count.used_by(lang) == count.shared + own
    assert count.language_specific == 3 * own


def test_s3net_masks_add_no_parameter(tmp_path):
    plain = build_xlsr({"name": "xlsr_tiny"})
    params = prunable_parameters(plain)
    SubnetMasks.from_dense({lang: random_masks(params, 0.5, "layerwise", i) for i, lang in enumerate(["es", "fr"])},
                           {}).save(str(tmp_path / "masks.pt"))
    count = count_parameters(build_xlsr({"name": "xlsr_tiny"}, mask_file=str(tmp_path / "masks.pt")))
    assert count.method == "s3net" and count.per_language == {"es": 0, "fr": 0}
    assert count.total == count.shared == sum(p.numel() for p in plain.parameters())
    assert count_parameters(plain).method == "dense"


@pytest.mark.parametrize("name, kind, paper", [
    ("xlsr_base", None, "95M"), ("xlsr_base", "adapter", "143M"), ("xlsr_base", "gating", "95M"),
    ("xlsr_large", None, "317M"), ("xlsr_large", "adapter", "444M"),
])
def test_the_paper_params_column(name, kind, paper):
    """#params of the paper's Table (XLSR-10: 10 languages, adapters of width 256)."""
    conf = None if kind is None else {"type": kind, "languages": XLSR10, "bottleneck": 256}
    if kind == "gating":
        conf.pop("bottleneck")
    with torch.device("meta"):
        model = XLSRPretrainModel({"name": name}, language_modules=conf)
    assert count_parameters(model).millions() == paper


def test_a_frontend_has_no_pretraining_heads():
    frontend = S3NetFrontend(xlsr_conf={"name": "xlsr_tiny"}, language_modules={"type": "gating", "languages": ["es"]})
    count = count_parameters(frontend)
    heads = XLSRPretrainModel({"name": "xlsr_tiny"}).xlsr
    head_params = sum(p.numel() for m in (heads.quantizer, heads.project_q, heads.final_proj) for p in m.parameters())
    assert count.shared == sum(p.numel() for p in heads.parameters()) - head_params
    assert format_millions(94_371_712) == "94M"
    assert format_millions(357_700) == "0.36M" and format_millions(9_994_000) == "9.99M"
    assert format_millions(9_999_500) == "10M"
