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

``pattern: n:m`` (N:M structured sparsity, :mod:`espnet_s3net.masks.pruning`) makes every
method's masks N:M, with ``sparsity`` equal to ``1 - n/m``. Iterative LTH prunes its
intermediate rounds unstructured toward the round's target, except that each group's ``n``
highest-magnitude weights are never pruned there: no group loses more than ``m - n``, so the
final round makes the mask N:M by pruning more, never by bringing back a weight that was
pruned (and zero) while the copy trained. The scope only matters in those intermediate rounds.

:func:`extract_language` seeds torch's RNG (span masks, negatives, dropout) with the
language's seed and restores the caller's RNG state afterwards: the same model, data and
seed give the same masks, however often and in whichever order extraction is run.

:func:`extract_subnets` is the whole extraction stage of the recipe: every language of a
model (a pre-training experiment's checkpoint or a public checkpoint,
:func:`load_source_model`) into one mask file, with per-language results kept so that a
killed run resumes, and a progress line with an ETA after each language.
"""

import copy
import logging
import math
import os
import zlib
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import yaml

from espnet_s3net.data.batches import length_bins, pad_waveforms, read_waveforms
from espnet_s3net.data.kaldi_dir import read_kaldi_map
from espnet_s3net.log import Progress
from espnet_s3net.masks.mask_file import SubnetMasks, parameter_fingerprint
from espnet_s3net.masks.pruning import (
    DEFAULT_PRUNABLE,
    UNSTRUCTURED,
    check_pattern,
    masks_from_scores,
    nm_masks,
    prunable_parameters,
    random_masks,
)
from espnet_s3net.train.schedules import count_update

Batch = Tuple[torch.Tensor, torch.Tensor]

#: extraction config keys (YAML) and their defaults
DEFAULTS = dict(method="te", scope="layerwise", sparsity=0.5, pattern=UNSTRUCTURED, seed=0, batch_bins=480000,
                batches=8, lth_steps=50, lth_lr=1e-4, lth_rounds=1, include=None, exclude=None)


def language_batches(data_dir: str, batch_bins: int, max_batches: int, seed: int) -> List[Batch]:
    """Up to ``max_batches`` padded batches (speech (B, S), lengths (B,)) of a dump dir,
    utterances in a seeded random order, ``max length × count ≤ batch_bins`` samples."""
    wav = read_kaldi_map(os.path.join(data_dir, "wav.scp"))
    lengths = {u: int(n) for u, n in read_kaldi_map(os.path.join(data_dir, "utt2num_samples")).items()}
    order = [str(u) for u in np.random.default_rng(seed).permutation(sorted(wav))]
    batches = [pad_waveforms(read_waveforms([wav[u] for u in utts]))
               for utts in length_bins(order, lengths, batch_bins)[:max_batches]]
    if not batches:
        raise ValueError(f"{data_dir} gave no batch (is it empty?)")
    return batches


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
              device: torch.device, pattern: str = UNSTRUCTURED) -> Dict[str, torch.Tensor]:
    """Lottery-ticket masks of one language (see the module docstring)."""
    trained = copy.deepcopy(model)
    params = find_params(trained)
    nm = check_pattern(pattern, {n: params[n].shape for n in names}, sparsity)
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
        final = r == rounds
        target = sparsity if final else 1.0 - (1.0 - sparsity) ** (r / rounds)
        # already pruned entries stay pruned: they score below every surviving weight
        scores = {n: torch.where(keep[n], params[n].detach().abs(), torch.full_like(params[n], -1.0)) for n in names}
        if nm is not None and not final:  # each group's n highest stay, for the final N:M round
            protected = nm_masks(scores, *nm)
            scores = {n: torch.where(protected[n], math.inf, s) for n, s in scores.items()}
        keep = masks_from_scores(scores, target, scope, pattern if final else UNSTRUCTURED)
    return keep


def extract_language(method: str, model: torch.nn.Module, find_params, batches: Sequence[Batch], cfg: Dict,
                     device: torch.device, seed: int) -> Dict[str, torch.Tensor]:
    """Masks of one language with ``method`` in te | lth | random; torch's RNG is seeded with
    ``seed`` for the passes and the caller's RNG state is left as it was."""
    params = find_params(model)
    # a pattern that contradicts the sparsity or the tensors fails before any pass
    check_pattern(cfg["pattern"], {n: p.shape for n, p in params.items()}, cfg["sparsity"])
    if method == "te":
        with _seeded(seed, device):
            scores = taylor_importance(model, params, batches, device)
        return masks_from_scores(scores, cfg["sparsity"], cfg["scope"], cfg["pattern"])
    if method == "lth":
        with _seeded(seed, device):
            return lth_masks(model, list(params), find_params, batches, cfg["lth_steps"], cfg["lth_lr"],
                             cfg["lth_rounds"], cfg["sparsity"], cfg["scope"], device, cfg["pattern"])
    if method == "random":
        return random_masks(params, cfg["sparsity"], cfg["scope"], seed, cfg["pattern"])
    raise ValueError(f"unknown extraction method {method!r}: te, lth or random")


def load_config(path: str) -> Dict[str, Any]:
    """An extraction config (YAML) over :data:`DEFAULTS`; an unknown key is an error."""
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **cfg}


def load_source_model(device: torch.device, model_config: Optional[str] = None, model_file: Optional[str] = None,
                      init: Optional[str] = None) -> Tuple[torch.nn.Module, str]:
    """The pre-training task model to extract from, and the path that names it (the mask
    file's ``source_model``): a checkpoint of our pre-training (``model_config`` +
    ``model_file``) or a public checkpoint (``init``: fairseq ``.pt`` file or Hugging Face
    directory, architecture read from it)."""
    if (init is None) == (model_file is None):
        raise ValueError("give either a public checkpoint (init) or model_config + model_file")
    if init is not None:
        from espnet_s3net.models.pretrain_model import XLSRPretrainModel

        return XLSRPretrainModel(init_checkpoint=init).to(device), os.path.abspath(init)
    if model_config is None:
        raise ValueError(f"model_file {model_file} needs model_config (the experiment's config.yaml)")
    from espnet_s3net.tasks.xlsr_pretrain import XLSRPretrainTask

    model, _ = XLSRPretrainTask.build_model_from_file(model_config, model_file, str(device))
    return model, os.path.abspath(model_file)


def language_seed(seed: int, lang: str) -> int:
    """The seed of one language's passes: independent of which other languages are extracted."""
    return seed + zlib.crc32(lang.encode()) % 100003


def extract_subnets(model: torch.nn.Module, langs: Sequence[str], data_root: str, cfg: Dict[str, Any],
                    output: str, device: torch.device, source_model: str) -> SubnetMasks:
    """Masks of every language of ``langs`` (``<data_root>/train_<lang>``) of the XLSR model
    inside ``model``, with ``cfg`` (:func:`load_config`), written to the mask file ``output``
    and returned.

    Each language's masks are kept in ``<output dir>/tmp/<lang>.pt`` and reused when the
    config and the model's prunable weights are the same, so a killed run resumes; a
    progress line with the ETA is logged after each language extracted.
    """
    from espnet_s3net.models.pretrain_model import find_xlsr

    missing = [lang for lang in langs if cfg["method"] != "random"
               and not os.path.isdir(os.path.join(data_root, f"train_{lang}"))]
    if missing:  # any language id works (ISO 639-3, Common Voice locales, ...) given its data
        raise ValueError(f"no data dir {os.path.join(data_root, 'train_<lang>')} for language(s) "
                         f"{', '.join(missing)}")
    include = cfg["include"] or DEFAULT_PRUNABLE

    def find_params(m):
        return prunable_parameters(find_xlsr(m), include, cfg["exclude"])

    names = list(find_params(model))
    source = parameter_fingerprint(find_xlsr(model), names)
    out_dir = os.path.dirname(os.path.abspath(output))
    tmp_dir = os.path.join(out_dir, "tmp")
    os.makedirs(tmp_dir, exist_ok=True)
    dense, todo = {}, []
    for lang in langs:
        tmp = os.path.join(tmp_dir, f"{lang}.pt")
        saved = torch.load(tmp, weights_only=True) if os.path.exists(tmp) else None
        # a key missing from a saved config (saved before the key existed) had its default
        if saved is not None and {**DEFAULTS, **saved["config"]} == cfg and saved["source"] == source:
            logging.info(f"{lang}: reusing {tmp}")
            dense[lang] = saved["masks"]
        else:
            todo.append(lang)
    what = f"{cfg['method']} extraction"
    if todo:
        logging.info(f"{what} ({cfg['scope']}, sparsity {cfg['sparsity']}, {cfg['pattern']}) of "
                     f"{len(todo)} language(s): {' '.join(todo)}")
    progress = Progress(len(todo), what, interval_s=0.0)
    for lang in todo:
        logging.info(f"{lang}: {what}")
        batches = [] if cfg["method"] == "random" else language_batches(
            os.path.join(data_root, f"train_{lang}"), cfg["batch_bins"], cfg["batches"], cfg["seed"])
        masks = extract_language(cfg["method"], model, find_params, batches, cfg, device,
                                 language_seed(cfg["seed"], lang))
        dense[lang] = {n: m.cpu() for n, m in masks.items()}
        tmp = os.path.join(tmp_dir, f"{lang}.pt")
        torch.save({"config": cfg, "source": source, "masks": dense[lang]}, tmp + ".tmp")
        os.replace(tmp + ".tmp", tmp)
        progress.update()
    meta = {k: cfg[k] for k in ("method", "scope", "sparsity", "pattern", "seed")}
    meta.update(config=cfg, source_fingerprint=source, source_model=source_model)
    subnets = SubnetMasks.from_dense({lang: dense[lang] for lang in langs}, meta)
    subnets.save(output)
    logging.info(f"wrote {output}: {len(langs)} languages, {len(names)} prunable tensors")
    return subnets
