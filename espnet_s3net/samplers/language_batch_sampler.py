"""Single-language mini-batches for language-adaptive training.

S3Net trains every step on utterances of one language ``l``, and ``l`` is drawn
from the multinomial ``p_l ∝ (n_l / N) ** alpha`` where ``n_l`` is the amount of
audio of language ``l`` (here: total samples) and ``N`` the total over all
languages. ``alpha < 1`` up-samples low-resource languages (XLSR used 0.5).

Two samplers share one interface (``set_epoch``, ``epoch_batches``,
``__iter__`` over lists of utterance ids, ``realised_histogram``):

* :class:`LanguageBatchSampler` for training: draws the language of every group
  of ``accum_grad`` consecutive batches, then fills each batch with utterances of
  that language (cycling through a reshuffled order of the language's
  utterances, so that small languages are repeated as often as ``p_l`` asks).
* :class:`LanguageCoverageSampler` for validation: every utterance exactly once,
  grouped into single-language batches, the same list every epoch.

Batches are sized ESPnet-``numel`` style by padded samples: a batch of ``k``
utterances whose longest has ``S`` samples costs ``k * S`` bins and holds at
most ``batch_bins``, except that it always holds at least ``min_batch_size``
utterances (the DDP world size, so that each rank gets one utterance or more).
"""

import math
from collections import Counter
from typing import Dict, Iterator, List, Optional

import numpy as np

from espnet_s3net.data.batches import length_bins


def target_language_probs(
    utt2lang: Dict[str, str], utt2len: Dict[str, int], alpha: float
) -> Dict[str, float]:
    """Return ``p_l ∝ (n_l / N) ** alpha`` for the languages of ``utt2len``.

    Args:
        utt2lang: utterance id -> language id.
        utt2len: utterance id -> length in samples.
        alpha: smoothing exponent (1 = proportional to data, 0 = uniform).
    """
    totals: Dict[str, int] = Counter()
    for utt, length in utt2len.items():
        totals[utt2lang[utt]] += length
    total = sum(totals.values())
    weights = {lang: (n / total) ** alpha for lang, n in sorted(totals.items())}
    norm = sum(weights.values())
    return {lang: w / norm for lang, w in weights.items()}


def _check_inputs(
    utt2lang: Dict[str, str],
    utt2len: Dict[str, int],
    batch_bins: int,
    min_batch_size: int,
) -> None:
    if len(utt2len) == 0:
        raise ValueError("No utterances given to the language batch sampler")
    if batch_bins <= 0:
        raise ValueError(f"batch_bins must be positive, got {batch_bins}")
    if min_batch_size < 1:
        raise ValueError(f"min_batch_size must be >= 1, got {min_batch_size}")
    for utt, length in utt2len.items():
        if utt not in utt2lang:
            raise ValueError(f"Utterance '{utt}' has a length but no language")
        if length <= 0:
            raise ValueError(f"Utterance '{utt}' has non-positive length {length}")


class LanguageBatchSampler:
    """Draw single-language batches with language probabilities ``p_l``.

    Args:
        utt2lang: utterance id -> language id (``utt2lang``).
        utt2len: utterance id -> length in samples (e.g. ``utt2num_samples``);
            its keys are the utterances that are sampled.
        batch_bins: padded samples per batch (``max length * batch size``).
        alpha: exponent of ``p_l ∝ (n_l / N) ** alpha``.
        seed: base seed; the batches of an epoch depend only on (seed, epoch).
        accum_grad: consecutive batches sharing one language draw (one
            optimizer step accumulates over them).
        num_batches: batches per epoch, a multiple of ``accum_grad``; default
            ``round(total samples / batch_bins)`` rounded up to a multiple of
            ``accum_grad``.
        min_batch_size: fewest utterances per batch; a batch that would be
            smaller takes more utterances of its language (repeating them if the
            language has too few).
        bucket_size: utterances of one language shuffled, then sorted by
            length together before being cut into batches (larger: less
            padding, less variety in batch composition).
    """

    def __init__(
        self,
        utt2lang: Dict[str, str],
        utt2len: Dict[str, int],
        batch_bins: int,
        alpha: float,
        seed: int,
        accum_grad: int = 1,
        num_batches: Optional[int] = None,
        min_batch_size: int = 1,
        bucket_size: int = 1000,
    ):
        _check_inputs(utt2lang, utt2len, batch_bins, min_batch_size)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if accum_grad < 1:
            raise ValueError(f"accum_grad must be >= 1, got {accum_grad}")
        if num_batches is not None and (num_batches < 1 or num_batches % accum_grad):
            raise ValueError(
                f"num_batches (num_iters_per_epoch) must be a positive multiple of "
                f"accum_grad={accum_grad} so that no optimizer step mixes "
                f"languages across epochs, got {num_batches}"
            )
        if bucket_size < 1:
            raise ValueError(f"bucket_size must be >= 1, got {bucket_size}")
        self.utt2len = dict(utt2len)
        self.batch_bins = batch_bins
        self.alpha = alpha
        self.seed = seed
        self.accum_grad = accum_grad
        self.min_batch_size = min_batch_size
        self.bucket_size = bucket_size
        self.lang2utts: Dict[str, List[str]] = {}
        for utt in sorted(utt2len):
            self.lang2utts.setdefault(utt2lang[utt], []).append(utt)
        self.languages = sorted(self.lang2utts)
        self.target_probs = target_language_probs(utt2lang, utt2len, alpha)
        if num_batches is None:
            total = sum(self.utt2len.values())
            num_batches = max(1, round(total / batch_bins))
            num_batches = math.ceil(num_batches / accum_grad) * accum_grad
        self.num_batches = num_batches
        self.epoch = 1
        self._last_histogram: Dict[str, int] = {}

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(N-utt={len(self.utt2len)}, "
            f"languages={len(self.languages)}, batch_bins={self.batch_bins}, "
            f"alpha={self.alpha}, accum_grad={self.accum_grad}, "
            f"num_batches={self.num_batches}, min_batch_size={self.min_batch_size})"
        )

    def __len__(self) -> int:
        return self.num_batches

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches ``__iter__`` yields."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[List[str]]:
        return iter(self.epoch_batches(self.epoch))

    def realised_histogram(self) -> Dict[str, int]:
        """Batches per language in the last generated epoch (all languages)."""
        return {lang: self._last_histogram.get(lang, 0) for lang in self.languages}

    def epoch_batches(self, epoch: int) -> List[List[str]]:
        """Return the batches of ``epoch``: identical for equal (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        probs = np.array([self.target_probs[lang] for lang in self.languages])
        num_groups = self.num_batches // self.accum_grad
        drawn = rng.choice(len(self.languages), size=num_groups, p=probs)
        queues: Dict[str, List[List[str]]] = {lang: [] for lang in self.languages}
        batches: List[List[str]] = []
        batch_langs: List[str] = []
        for index in drawn:
            lang = self.languages[index]
            for _ in range(self.accum_grad):
                if not queues[lang]:
                    queues[lang] = self._one_pass(lang, rng)
                batches.append(queues[lang].pop())
                batch_langs.append(lang)
        self._last_histogram = dict(Counter(batch_langs))
        return batches

    def _one_pass(self, lang: str, rng: np.random.Generator) -> List[List[str]]:
        """Batches covering every utterance of ``lang`` once, in random order."""
        utts = list(self.lang2utts[lang])
        rng.shuffle(utts)
        batches: List[List[str]] = []
        for start in range(0, len(utts), self.bucket_size):
            bucket = sorted(
                utts[start : start + self.bucket_size],
                key=lambda u: -self.utt2len[u],
            )
            batches.extend(length_bins(bucket, self.utt2len, self.batch_bins))
        batches = [self._fill(batch, lang, rng) for batch in batches]
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def _fill(
        self, batch: List[str], lang: str, rng: np.random.Generator
    ) -> List[str]:
        """Add utterances of ``lang`` until the batch has ``min_batch_size``."""
        missing = self.min_batch_size - len(batch)
        if missing <= 0:
            return batch
        taken = set(batch)
        others = [u for u in self.lang2utts[lang] if u not in taken]
        if len(others) >= missing:
            extra = list(rng.choice(others, size=missing, replace=False))
        else:
            pool = self.lang2utts[lang]
            extra = others + list(rng.choice(pool, size=missing - len(others)))
        return batch + [str(u) for u in extra]


class LanguageCoverageSampler:
    """Every utterance once, in single-language batches (validation).

    Batches are formed per language from its utterances sorted by descending
    length; the list is the same every epoch. A batch smaller than
    ``min_batch_size`` (the last one of a language under DDP) is completed by
    repeating the language's first utterances, so a few utterances may count
    twice in the validation loss.

    Args:
        utt2lang: utterance id -> language id.
        utt2len: utterance id -> length in samples; its keys are covered.
        batch_bins: padded samples per batch.
        min_batch_size: fewest utterances per batch.
    """

    def __init__(
        self,
        utt2lang: Dict[str, str],
        utt2len: Dict[str, int],
        batch_bins: int,
        min_batch_size: int = 1,
    ):
        _check_inputs(utt2lang, utt2len, batch_bins, min_batch_size)
        self.batch_bins = batch_bins
        self.min_batch_size = min_batch_size
        self.languages = sorted({utt2lang[utt] for utt in utt2len})
        self.batches: List[List[str]] = []
        self._histogram: Dict[str, int] = {}
        for lang in self.languages:
            utts = sorted(
                (u for u in utt2len if utt2lang[u] == lang),
                key=lambda u: (-utt2len[u], u),
            )
            lang_batches = length_bins(utts, utt2len, batch_bins)
            for batch in lang_batches:
                cycle = 0
                while len(batch) < min_batch_size:
                    batch.append(utts[cycle % len(utts)])
                    cycle += 1
            self.batches.extend(lang_batches)
            self._histogram[lang] = len(lang_batches)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(N-batch={len(self.batches)}, "
            f"languages={len(self.languages)}, batch_bins={self.batch_bins}, "
            f"min_batch_size={self.min_batch_size})"
        )

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int) -> None:
        """Accepted for interface compatibility: batches do not change."""

    def __iter__(self) -> Iterator[List[str]]:
        return iter([list(batch) for batch in self.batches])

    def epoch_batches(self, epoch: int) -> List[List[str]]:
        """Return the (epoch-independent) batches."""
        return list(self)

    def realised_histogram(self) -> Dict[str, int]:
        """Batches per language."""
        return dict(self._histogram)
