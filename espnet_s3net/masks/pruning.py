"""Which tensors are prunable, and scores -> binary masks (layerwise or global).

A mask keeps the highest scores and prunes the lowest: ``round(sparsity · n)`` entries
per tensor (layerwise: every tensor gets exactly the target sparsity) or over all
prunable tensors at once (global: one threshold). Ties are broken by position (a
stable sort), so masks are deterministic.
"""

import re
from typing import Dict, Optional

import torch

#: transformer linear weights: attention q/k/v/out and feed-forward in/out
DEFAULT_PRUNABLE = (
    r"^encoder\.transformer\.layers\.\d+\."
    r"(attention\.(q|k|v|out)_proj|feed_forward\.(intermediate|output)_dense)\.weight$"
)
SCOPES = ("layerwise", "global")


def prunable_parameters(
    module: torch.nn.Module, include: str = DEFAULT_PRUNABLE, exclude: Optional[str] = None
) -> Dict[str, torch.nn.Parameter]:
    """Parameters whose names match ``include`` and not ``exclude`` (model order)."""
    out = {
        name: p for name, p in module.named_parameters()
        if re.search(include, name) and not (exclude and re.search(exclude, name))
    }
    if not out:
        raise ValueError(f"no parameter name matches the prunable pattern {include!r}")
    return out


def _keep_flat(scores: torch.Tensor, n_prune: int) -> torch.Tensor:
    keep = torch.ones_like(scores, dtype=torch.bool)
    if n_prune > 0:
        order = torch.sort(scores, stable=True).indices
        keep[order[:n_prune]] = False
    return keep


def masks_from_scores(scores: Dict[str, torch.Tensor], sparsity: float, scope: str) -> Dict[str, torch.Tensor]:
    """Bool masks keeping the highest ``scores`` at the given sparsity (fraction pruned)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if scope == "layerwise":
        return {
            name: _keep_flat(s.detach().reshape(-1).float(), round(sparsity * s.numel())).view(s.shape)
            for name, s in scores.items()
        }
    flat = torch.cat([s.detach().reshape(-1).float() for s in scores.values()])
    keep = _keep_flat(flat, round(sparsity * flat.numel()))
    out, start = {}, 0
    for name, s in scores.items():
        out[name] = keep[start:start + s.numel()].view(s.shape)
        start += s.numel()
    return out


def magnitude_masks(params: Dict[str, torch.Tensor], sparsity: float, scope: str) -> Dict[str, torch.Tensor]:
    """One-shot magnitude pruning: the lowest ``|w|`` are pruned."""
    return masks_from_scores({n: p.detach().abs() for n, p in params.items()}, sparsity, scope)


def random_masks(params: Dict[str, torch.Tensor], sparsity: float, scope: str, seed: int) -> Dict[str, torch.Tensor]:
    """The random control: the same sparsity per tensor (layerwise) or in total (global)."""
    gen = torch.Generator().manual_seed(seed)
    scores = {n: torch.rand(p.shape, generator=gen) for n, p in params.items()}
    return masks_from_scores(scores, sparsity, scope)
