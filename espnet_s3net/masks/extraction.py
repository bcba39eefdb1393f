"""Per-language sub-network extraction: Taylor importance (TE), lottery tickets (LTH), random.

All methods work on any model whose ``forward(speech, speech_lengths)`` returns ESPnet's
``(loss, stats, weight)`` and whose prunable tensors are given by name (relative to the
module the masks are for, e.g. the XLSR model inside the task model).

- TE: ``I_i = (g_i θ_i)^2`` where ``g = ∂L(D^l, θ)/∂θ`` is the gradient of the loss on the
  language's data at the starting weights, accumulated (summed) over the given batches,
  i.e. the first-order Taylor estimate of the loss change when ``θ_i`` is removed. The
  passes run in eval mode (no dropout, LayerDrop or Gumbel noise, no quantizer update).
- LTH: a copy of the model is trained on the language alone (train mode; its schedules
  advance once per update, :mod:`espnet_s3net.train.schedules`), then
  magnitude-pruned (``|θ_trained|``); the mask is meant for the *starting* weights. With
  ``rounds = k > 1`` (iterative pruning), each round rewinds every tensor of the copy
  (parameters and buffers) to its starting value, applies the mask, trains with the mask
  applied and prunes a further fraction, so that ``(1 - f)^k = 1 - sparsity``.

:func:`extract_language` seeds torch's RNG (span masks, negatives, dropout) with the
language's seed and restores the caller's RNG state afterwards: the same model, data and
seed give the same masks, however often and in whichever order extraction is run.
"""

import copy
import os
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import numpy as np
import torch

from espnet_s3net.data.kaldi_dir import read_kaldi_map
from espnet_s3net.masks.pruning import masks_from_scores, random_masks
from espnet_s3net.train.schedules import count_update

Batch = Tuple[torch.Tensor, torch.Tensor]


def language_batches(data_dir: str, batch_bins: int, max_batches: int, seed: int) -> List[Batch]:
    """Up to ``max_batches`` padded batches (speech (B, S), lengths (B,)) of a dump dir,
    utterances in a seeded random order, ``max length × count ≤ batch_bins`` samples."""
    import soundfile as sf

    wav = read_kaldi_map(os.path.join(data_dir, "wav.scp"))
    lengths = {u: int(n) for u, n in read_kaldi_map(os.path.join(data_dir, "utt2num_samples")).items()}
    order = list(np.random.default_rng(seed).permutation(sorted(wav)))
    batches, current = [], []
    for utt in order + [None]:
        if utt is not None and (not current or _padded(current + [utt], lengths) <= batch_bins):
            current.append(utt)
            continue
        if current:
            audio = [torch.from_numpy(sf.read(wav[u], dtype="float32")[0]) for u in current]
            lens = torch.tensor([len(a) for a in audio])
            speech = torch.zeros(len(audio), int(lens.max()))
            for i, a in enumerate(audio):
                speech[i, : len(a)] = a
            batches.append((speech, lens))
            if len(batches) == max_batches:
                break
        current = [utt] if utt is not None else []
    if not batches:
        raise ValueError(f"{data_dir} gave no batch (is it empty?)")
    return batches


def _padded(utts: List[str], lengths: Dict[str, int]) -> int:
    """Samples of a padded batch of ``utts``: longest length × count."""
    return max(lengths[u] for u in utts) * len(utts)


def _cycle(batches: Sequence[Batch]) -> Iterator[Batch]:
    while True:
        yield from batches


@contextmanager
def _seeded(seed: int, device: torch.device):
    """Torch's RNG (CPU and ``device``) seeded with ``seed``; the caller's state restored after."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@contextmanager
def _eval_mode(model: torch.nn.Module):
    """``model`` in eval mode; every submodule's train/eval flag restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _loss(model: torch.nn.Module, batch: Batch, device: torch.device) -> torch.Tensor:
    speech, lengths = batch
    loss, _, _ = model(speech.to(device), lengths.to(device))
    return loss.mean()


def taylor_importance(model: torch.nn.Module, params: Dict[str, torch.nn.Parameter],
                      batches: Sequence[Batch], device: torch.device) -> Dict[str, torch.Tensor]:
    """``(g θ)^2`` per prunable tensor, ``g`` accumulated over ``batches`` in eval mode."""
    model.zero_grad(set_to_none=True)
    with _eval_mode(model):
        for batch in batches:
            _loss(model, batch, device).backward()
    scores = {}
    for name, p in params.items():
        if p.grad is None:
            raise ValueError(f"tensor {name} got no gradient from the loss")
        scores[name] = (p.grad.detach() * p.detach()).pow(2)
    model.zero_grad(set_to_none=True)
    return scores


def lth_masks(model: torch.nn.Module, names: Sequence[str],
              find_params: Callable[[torch.nn.Module], Dict[str, torch.nn.Parameter]],
              batches: Sequence[Batch], steps: int, lr: float, rounds: int, sparsity: float, scope: str,
              device: torch.device) -> Dict[str, torch.Tensor]:
    """Lottery-ticket masks of one language (see the module docstring)."""
    trained = copy.deepcopy(model)
    params = find_params(trained)
    start = {k: v.detach().clone() for k, v in trained.state_dict().items()}
    keep = {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}
    data = _cycle(batches)
    for r in range(1, rounds + 1):
        trained.load_state_dict(start)  # rewind every parameter and buffer
        with torch.no_grad():
            for n in names:
                params[n].mul_(keep[n])
        optim = torch.optim.Adam(trained.parameters(), lr=lr)
        trained.train()
        for _ in range(steps):
            optim.zero_grad(set_to_none=True)
            _loss(trained, next(data), device).backward()
            optim.step()
            count_update(trained)
            with torch.no_grad():
                for n in names:
                    params[n].mul_(keep[n])
        target = 1.0 - (1.0 - sparsity) ** (r / rounds)
        # already pruned entries stay pruned: they score below every surviving weight
        scores = {n: torch.where(keep[n], params[n].detach().abs(), torch.full_like(params[n], -1.0)) for n in names}
        keep = masks_from_scores(scores, target, scope)
    return keep


def extract_language(method: str, model: torch.nn.Module, find_params, batches: Sequence[Batch], cfg: Dict,
                     device: torch.device, seed: int) -> Dict[str, torch.Tensor]:
    """Masks of one language with ``method`` in te | lth | random; torch's RNG is seeded with
    ``seed`` for the passes and the caller's RNG state is left as it was."""
    params = find_params(model)
    if method == "te":
        with _seeded(seed, device):
            scores = taylor_importance(model, params, batches, device)
        return masks_from_scores(scores, cfg["sparsity"], cfg["scope"])
    if method == "lth":
        with _seeded(seed, device):
            return lth_masks(model, list(params), find_params, batches, cfg["lth_steps"], cfg["lth_lr"],
                             cfg["lth_rounds"], cfg["sparsity"], cfg["scope"], device)
    if method == "random":
        return random_masks(params, cfg["sparsity"], cfg["scope"], seed)
    raise ValueError(f"unknown extraction method {method!r}: te, lth or random")

