"""Statistics of error rates over test utterances and training seeds.

The unit of resampling is the test utterance: an utterance's errors (substitutions +
deletions + insertions) and reference length (tokens) come from the scoring's
``utt_errors`` file. A rate is always ``100 * sum(errors) / sum(ref_len)`` over utterances,
as sclite computes it.

- :func:`error_rate`: the rate of counts.
- :func:`bootstrap_ci`: percentile interval of the rate when the test utterances are drawn
  again with replacement (``n_resamples`` times, seeded).
- :func:`paired_bootstrap`: arm A against a control B on the same utterances, every resample
  drawn once and used for both; the difference's interval and a two-sided p-value (the
  resampled differences centred on the observed one, as under "no difference", counted as
  at least as far from zero as the observed: ``(1 + #{|d* - d| >= |d|}) / (n + 1)``).
- :func:`sign_test`: two-sided exact binomial test (``scipy.stats.binomtest``, p = 1/2) of how
  many utterances got fewer errors against how many got more (ties dropped).
- :func:`mean_sd`: mean and sample standard deviation (``ddof=1``) over seeds.
- :func:`group_means`: High / Low / Avg as means of per-language rates (the paper's averages).
- :class:`TableBootstrap`: all of these for a table of arms x seeds x languages. Each
  language's utterances are resampled on their own (stratified: every resample keeps each
  language's number of utterances), with the same draws for every arm and seed (seeded by the
  seed and the language's name), so arms are compared on paired resamples and a group column
  (the mean of its languages' rates) is resampled as the paper computes it.

Seeds enter as the mean over seeds: per language, the mean of the seeds' rates. The seeds of
an arm are scored on the same utterances, so this mean is also the rate of the errors pooled
over seeds (every seed has the same denominator); the interval and the p-values describe the
test-set sampling of that seed-averaged system. Variation between training runs is the
standard deviation over seeds, reported next to it, and not part of the p-values.

Resampling is vectorised: each batch of resamples is a matrix of how often each utterance
is drawn (``bincount`` of uniform draws), multiplied with the (utterances x columns) matrix
of counts, so 10,000 resamples of a few thousand utterances take a fraction of a second.
"""

import math
import zlib
from dataclasses import dataclass
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

#: default number of bootstrap resamples
N_RESAMPLES = 10_000
#: default confidence level of intervals
LEVEL = 0.95
# resample draws per batch (resamples x utterances), to bound memory
_BATCH_DRAWS = 1 << 18

ArrayLike = Union[Sequence[float], np.ndarray]


def error_rate(errors: ArrayLike, ref_len: ArrayLike) -> float:
    """``100 * sum(errors) / sum(ref_len)`` (%)."""
    total = float(np.sum(ref_len))
    if total <= 0:
        raise ValueError("no reference tokens: the error rate is undefined")
    return 100.0 * float(np.sum(errors)) / total


def mean_sd(values: ArrayLike, what: str = "seeds") -> Tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; ``nan`` for a single value)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError(f"no {what}: mean and standard deviation need at least one value")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else math.nan


def _rng(seed: Union[int, np.random.Generator, np.random.SeedSequence, None]) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_resamples(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")


def resampled_sums(columns: np.ndarray, n_resamples: int = N_RESAMPLES,
                   seed: Union[int, np.random.Generator, None] = 0) -> np.ndarray:
    """Column sums of ``columns`` (utterances x k) over ``n_resamples`` bootstrap resamples of its
    rows: (n_resamples x k). Row ``b`` uses the same draws for every column."""
    columns = np.asarray(columns, dtype=np.float64)
    if columns.ndim == 1:
        columns = columns[:, None]
    n = columns.shape[0]
    if n == 0:
        raise ValueError("no utterances to resample")
    rng = _rng(seed)
    out = np.empty((n_resamples, columns.shape[1]))
    batch = max(1, _BATCH_DRAWS // n)
    dtype = np.int32 if batch * n < 2**31 else np.int64
    for start in range(0, n_resamples, batch):
        rows = min(batch, n_resamples - start)
        draws = rng.integers(0, n, size=(rows, n), dtype=dtype)
        draws += (np.arange(rows, dtype=dtype) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n)
        out[start:start + rows] = weights.astype(np.float64) @ columns
    return out


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> Tuple[float, float]:
    """The central ``level`` interval of ``samples`` (percentile method)."""
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def language_rng(seed: int, lang: str) -> np.random.Generator:
    """The draws of one language: seeded by ``seed`` and the language's name, so that a language's
    resamples do not depend on which other languages or arms a table holds."""
    return np.random.default_rng([seed, zlib.crc32(lang.encode("utf-8"))])


def _rates(errors: np.ndarray, ref_len: np.ndarray) -> np.ndarray:
    return 100.0 * errors / np.maximum(ref_len, 1e-12)


def bootstrap_ci(errors: ArrayLike, ref_len: ArrayLike, n_resamples: int = N_RESAMPLES, seed=0,
                 level: float = LEVEL) -> Tuple[float, float]:
    """``level`` percentile bootstrap interval of :func:`error_rate` over resampled utterances."""
    _check_resamples(n_resamples, level)
    errors, ref_len = _aligned(errors, ref_len)
    error_rate(errors, ref_len)  # raises when undefined
    sums = resampled_sums(np.stack([errors, ref_len], axis=1), n_resamples, seed)
    return percentile_interval(_rates(sums[:, 0], sums[:, 1]), level)


class SignTest(NamedTuple):
    """Utterances with fewer / more errors in A than in B (ties dropped) and the two-sided p."""

    better: int
    worse: int
    ties: int
    p: float


def sign_test(differences: ArrayLike) -> SignTest:
    """Exact two-sided sign test of per-utterance differences (A - B; < 0: A better)."""
    from scipy.stats import binomtest

    differences = np.asarray(differences, dtype=float)
    better, worse = int((differences < 0).sum()), int((differences > 0).sum())
    ties = int(differences.size - better - worse)
    p = 1.0 if better + worse == 0 else float(binomtest(better, better + worse, 0.5).pvalue)
    return SignTest(better, worse, ties, p)


class PairedTest(NamedTuple):
    """Arm A against control B on one column: rates, difference A - B (points), its interval,
    the paired bootstrap p-value and the sign test."""

    rate_a: float
    rate_b: float
    difference: float
    ci: Tuple[float, float]
    p_bootstrap: float
    sign: SignTest


def bootstrap_p_value(resampled_differences: np.ndarray, observed: float) -> float:
    """Two-sided p of ``observed`` under "no difference": the resampled differences centred on
    ``observed`` that are at least as far from 0 as it is, ``(1 + count) / (n + 1)``."""
    far = np.abs(resampled_differences - observed) >= abs(observed) - 1e-9 * max(1.0, abs(observed))
    return float((1 + far.sum()) / (resampled_differences.size + 1))


def paired_bootstrap(errors_a: ArrayLike, errors_b: ArrayLike, ref_len: ArrayLike, n_resamples: int = N_RESAMPLES,
                     seed=0, level: float = LEVEL) -> PairedTest:
    """A against B on the same utterances (``errors_a[i]``, ``errors_b[i]``, ``ref_len[i]`` of utterance i)."""
    _check_resamples(n_resamples, level)
    errors_a, errors_b, ref_len = _aligned(errors_a, errors_b, ref_len)
    rate_a, rate_b = error_rate(errors_a, ref_len), error_rate(errors_b, ref_len)
    sums = resampled_sums(np.stack([errors_a, errors_b, ref_len], axis=1), n_resamples, seed)
    diffs = _rates(sums[:, 0], sums[:, 2]) - _rates(sums[:, 1], sums[:, 2])
    observed = rate_a - rate_b
    return PairedTest(rate_a, rate_b, observed, percentile_interval(diffs, level),
                      bootstrap_p_value(diffs, observed), sign_test(errors_a - errors_b))


def _aligned(*arrays: ArrayLike) -> List[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    if len({a.size for a in out}) > 1:
        raise ValueError(f"per-utterance arrays of different lengths: {', '.join(str(a.size) for a in out)}")
    return out


def high_low_avg(langs: Sequence[str], high: Sequence[str]) -> Dict[str, List[str]]:
    """``{"High": high, "Low": the others, "Avg": all}`` (in ``langs`` order); ``high`` must be in ``langs``."""
    langs = list(langs)
    unknown = [lang for lang in high if lang not in langs]
    if unknown:
        raise ValueError(f"High language(s) {', '.join(unknown)} not among the languages {' '.join(langs)}")
    return {"High": [x for x in langs if x in high], "Low": [x for x in langs if x not in high], "Avg": langs}


def group_means(rates: Mapping[str, Union[float, np.ndarray]], groups: Mapping[str, Sequence[str]]
                ) -> Dict[str, Union[float, np.ndarray]]:
    """Each group's mean of per-language rates (floats, or arrays such as per-seed or resampled
    rates); an empty group maps to ``nan``; a language without a rate raises ``ValueError``."""
    out: Dict[str, Union[float, np.ndarray]] = {}
    for name, langs in groups.items():
        missing = [lang for lang in langs if lang not in rates]
        if missing:
            raise ValueError(f"no rate for language(s) {', '.join(missing)} (needed by {name})")
        out[name] = sum(np.asarray(rates[x], dtype=float) for x in langs) / len(langs) if langs else math.nan
        if isinstance(out[name], np.ndarray) and out[name].ndim == 0:
            out[name] = float(out[name])
    return out


@dataclass
class LanguageScores:
    """One arm's per-utterance counts in one language: ``errors`` (seeds x utterances)."""

    utts: List[str]
    ref_len: np.ndarray
    errors: np.ndarray

    def __post_init__(self):
        self.ref_len = np.asarray(self.ref_len, dtype=np.float64).reshape(-1)
        self.errors = np.atleast_2d(np.asarray(self.errors, dtype=np.float64))
        if self.errors.shape[0] == 0:
            raise ValueError("no seeds")
        if self.errors.shape[1] != len(self.utts) or self.ref_len.size != len(self.utts):
            raise ValueError(f"{len(self.utts)} utterances, but errors of shape {self.errors.shape} "
                             f"and {self.ref_len.size} reference lengths")

    def seed_rates(self) -> np.ndarray:
        """Each seed's rate (%)."""
        return 100.0 * self.errors.sum(axis=1) / max(float(self.ref_len.sum()), 1e-12)


def check_same_utterances(scores: Mapping[str, Mapping[str, LanguageScores]], langs: Sequence[str]) -> None:
    """Every arm has every language, on the same utterances with the same reference lengths;
    ``ValueError`` naming the arms, the language and example utterances otherwise."""
    if not scores:
        raise ValueError("no arms")
    arms = list(scores)
    for arm in arms:
        missing = [lang for lang in langs if lang not in scores[arm]]
        if missing:
            raise ValueError(f"arm {arm} has no scores for language(s) {', '.join(missing)}")
    first = arms[0]
    for lang in langs:
        ref = scores[first][lang]
        for arm in arms[1:]:
            check_same_utterance_set(f"arms {first} and {arm}", lang, (first, ref.utts, ref.ref_len),
                                     (arm, scores[arm][lang].utts, scores[arm][lang].ref_len))


def check_same_utterance_set(what: str, lang: str, a: Tuple[str, List[str], np.ndarray],
                             b: Tuple[str, List[str], np.ndarray]) -> None:
    """``ValueError`` unless ``a`` and ``b`` (name, utterance ids, reference lengths) hold the
    same utterances in the same order with the same reference lengths; ``what`` names the pair."""
    (name_a, utts_a, len_a), (name_b, utts_b, len_b) = a, b
    if utts_a != utts_b:
        only_a = sorted(set(utts_a) - set(utts_b))
        only_b = sorted(set(utts_b) - set(utts_a))
        parts = [f"{len(only)} only in {name}, e.g. {only[0]}" for name, only in ((name_a, only_a), (name_b, only_b))
                 if only]
        raise ValueError(f"{what} were scored on different {lang} test utterances "
                         f"({'; '.join(parts) or 'the same utterances in another order'})")
    differ = np.flatnonzero(np.asarray(len_a) != np.asarray(len_b))
    if differ.size:
        i = int(differ[0])
        raise ValueError(f"{what} have different {lang} references: {differ.size} utterance(s) differ in "
                         f"reference length, e.g. {utts_a[i]} ({len_a[i]:.0f} tokens in {name_a}, "
                         f"{len_b[i]:.0f} in {name_b})")


class TableBootstrap:
    """Paired, stratified bootstrap of a table: arms x seeds x languages.

    Args:
        scores: arm -> language -> :class:`LanguageScores` (every arm the same utterances).
        langs: the table's languages (columns), in order.
        groups: group name -> languages (e.g. :func:`high_low_avg`).
        n_resamples, seed, level: the bootstrap's size, seed and interval level.
    """

    def __init__(self, scores: Mapping[str, Mapping[str, LanguageScores]], langs: Sequence[str],
                 groups: Optional[Mapping[str, Sequence[str]]] = None, n_resamples: int = N_RESAMPLES,
                 seed: int = 0, level: float = LEVEL):
        _check_resamples(n_resamples, level)
        self.langs = list(langs)
        if not self.langs:
            raise ValueError("no languages")
        check_same_utterances(scores, self.langs)
        self.scores = scores
        self.arms = list(scores)
        self.groups = {name: list(members) for name, members in (groups or {}).items()}
        for name, members in self.groups.items():
            unknown = [x for x in members if x not in self.langs]
            if unknown:
                raise ValueError(f"group {name} has language(s) {', '.join(unknown)} that are not columns")
        self.columns = self.langs + list(self.groups)
        self.n_resamples, self.level = n_resamples, level
        for lang in self.langs:
            if scores[self.arms[0]][lang].ref_len.sum() <= 0:
                raise ValueError(f"the {lang} test utterances have no reference tokens: the error rate is undefined")
        # per arm and language: the seeds' rates (observed) and the seed-mean rate of each resample
        self.seed_rates: Dict[str, Dict[str, np.ndarray]] = {arm: {} for arm in self.arms}
        self.resampled: Dict[str, Dict[str, np.ndarray]] = {arm: {} for arm in self.arms}
        for lang in self.langs:
            per_arm = [scores[arm][lang] for arm in self.arms]
            ref_len = per_arm[0].ref_len
            columns = np.concatenate([ref_len[:, None]] + [s.errors.T for s in per_arm], axis=1)
            sums = resampled_sums(columns, n_resamples, language_rng(seed, lang))
            offset = 1
            for arm, s in zip(self.arms, per_arm):
                n_seeds = s.errors.shape[0]
                seed_sums = sums[:, offset:offset + n_seeds]
                offset += n_seeds
                self.resampled[arm][lang] = _rates(seed_sums, sums[:, :1]).mean(axis=1)
                self.seed_rates[arm][lang] = s.seed_rates()

    def _check(self, arm: str, column: str) -> None:
        if arm not in self.resampled:
            raise ValueError(f"no arm {arm}; arms: {', '.join(self.arms)}")
        if column not in self.columns:
            raise ValueError(f"no column {column}; columns: {', '.join(self.columns)}")

    def _members(self, column: str) -> List[str]:
        return self.groups.get(column, [column])

    def seed_values(self, arm: str, column: str) -> np.ndarray:
        """The seeds' rates in ``column`` (a group: each seed's mean over the group's languages)."""
        self._check(arm, column)
        members = self._members(column)
        if not members:
            return np.full(len(next(iter(self.seed_rates[arm].values()))), math.nan)
        return sum(self.seed_rates[arm][x] for x in members) / len(members)

    def mean_sd(self, arm: str, column: str) -> Tuple[float, float]:
        """Mean and sd over seeds of ``column``."""
        return mean_sd(self.seed_values(arm, column))

    def resampled_values(self, arm: str, column: str) -> np.ndarray:
        """The seed-mean rate of ``column`` in each resample."""
        self._check(arm, column)
        members = self._members(column)
        if not members:
            return np.full(self.n_resamples, math.nan)
        return sum(self.resampled[arm][x] for x in members) / len(members)

    def ci(self, arm: str, column: str) -> Tuple[float, float]:
        """Interval of the seed-mean rate of ``column``."""
        values = self.resampled_values(arm, column)
        return (math.nan, math.nan) if np.isnan(values).all() else percentile_interval(values, self.level)

    def utterance_differences(self, arm: str, control: str, column: str) -> np.ndarray:
        """Per utterance of ``column``'s languages: seed-mean errors of ``arm`` minus those of ``control``."""
        self._check(arm, column)
        self._check(control, column)
        parts = [self.scores[arm][x].errors.mean(axis=0) - self.scores[control][x].errors.mean(axis=0)
                 for x in self._members(column)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def paired(self, arm: str, control: str, column: str) -> PairedTest:
        """``arm`` against ``control`` in ``column`` on the same resamples."""
        rate_a = float(np.mean(self.seed_values(arm, column)))
        rate_b = float(np.mean(self.seed_values(control, column)))
        if math.isnan(rate_a):
            return PairedTest(rate_a, rate_b, math.nan, (math.nan, math.nan), math.nan, SignTest(0, 0, 0, math.nan))
        diffs = self.resampled_values(arm, column) - self.resampled_values(control, column)
        observed = rate_a - rate_b
        return PairedTest(rate_a, rate_b, observed, percentile_interval(diffs, self.level),
                          bootstrap_p_value(diffs, observed),
                          sign_test(self.utterance_differences(arm, control, column)))
