from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

from espnet_s3net.samplers.language_batch_sampler import (
    LanguageBatchSampler,
    LanguageCoverageSampler,
    target_language_probs,
)

# Unbalanced toy corpus: per-language utterance counts; lengths 1..10 s at 16 kHz.
SIZES = {"fr": 400, "es": 150, "ky": 25, "sv-SE": 6}
BINS = 800_000
# Significance of the goodness-of-fit tests: a correct sampler fails them with
# probability 0.1 %; the seed is fixed, so the outcome is reproducible.
ALPHA_LEVEL = 1e-3


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    utt2lang, utt2len = {}, {}
    for lang, count in SIZES.items():
        for i in range(count):
            utt = f"{lang}-{i:04d}"
            utt2lang[utt] = lang
            utt2len[utt] = int(rng.integers(16_000, 160_000))
    return utt2lang, utt2len


def languages_of(batches, utt2lang):
    langs = []
    for batch in batches:
        batch_langs = {utt2lang[u] for u in batch}
        assert len(batch_langs) == 1, f"mixed batch {batch}"
        langs.append(batch_langs.pop())
    return langs


def test_target_probs_formula(corpus):
    utt2lang, utt2len = corpus
    totals = Counter()
    for utt, n in utt2len.items():
        totals[utt2lang[utt]] += n
    for alpha in (0.0, 0.5, 1.0):
        probs = target_language_probs(utt2lang, utt2len, alpha)
        raw = {lang: (n / sum(totals.values())) ** alpha for lang, n in totals.items()}
        norm = sum(raw.values())
        for lang in SIZES:
            assert probs[lang] == pytest.approx(raw[lang] / norm)
    uniform = target_language_probs(utt2lang, utt2len, 0.0)
    assert list(uniform.values()) == pytest.approx([1 / len(SIZES)] * len(SIZES))


def test_language_frequencies_match_target(corpus):
    utt2lang, utt2len = corpus
    sampler = LanguageBatchSampler(
        utt2lang, utt2len, batch_bins=BINS, alpha=0.5, seed=3, num_batches=4000
    )
    langs = languages_of(sampler.epoch_batches(1), utt2lang)
    counts = Counter(langs)
    order = sorted(SIZES)
    observed = [counts[lang] for lang in order]
    expected = [sampler.target_probs[lang] * len(langs) for lang in order]
    assert chisquare(observed, expected).pvalue > ALPHA_LEVEL
    assert sampler.realised_histogram() == {lang: counts[lang] for lang in order}
    # the same test has power: the data-proportional distribution (alpha = 1)
    # is rejected for these counts
    proportional = target_language_probs(utt2lang, utt2len, 1.0)
    wrong = [proportional[lang] * len(langs) for lang in order]
    assert chisquare(observed, wrong).pvalue < ALPHA_LEVEL


def test_batches_single_language_and_within_bins(corpus):
    utt2lang, utt2len = corpus
    sampler = LanguageBatchSampler(
        utt2lang, utt2len, batch_bins=BINS, alpha=0.5, seed=0, num_batches=500
    )
    batches = list(sampler)
    assert len(batches) == len(sampler) == 500
    languages_of(batches, utt2lang)
    for batch in batches:
        assert len(batch) >= 1
        assert max(utt2len[u] for u in batch) * len(batch) <= BINS
        assert len(set(batch)) == len(batch)


def test_low_resource_language_is_upsampled(corpus):
    utt2lang, utt2len = corpus
    sampler = LanguageBatchSampler(
        utt2lang, utt2len, batch_bins=BINS, alpha=0.5, seed=0, num_batches=2000
    )
    used = Counter(u for batch in sampler.epoch_batches(1) for u in batch)
    sv = [u for u in utt2lang if utt2lang[u] == "sv-SE"]
    # sv-SE gets ~3 % of 2000 batches of several utterances: far more than its
    # 6 utterances, so each one must have been reused (reshuffled passes)
    assert all(used[u] > 5 for u in sv)


def test_default_num_batches(corpus):
    utt2lang, utt2len = corpus
    total = sum(utt2len.values())
    sampler = LanguageBatchSampler(
        utt2lang, utt2len, batch_bins=BINS, alpha=0.5, seed=0
    )
    assert len(sampler) == round(total / BINS)
    grouped = LanguageBatchSampler(
        utt2lang, utt2len, batch_bins=BINS, alpha=0.5, seed=0, accum_grad=4
    )
    assert len(grouped) % 4 == 0 and len(grouped) >= round(total / BINS)


def test_deterministic_per_seed_and_epoch(corpus):
    utt2lang, utt2len = corpus
    kwargs = dict(batch_bins=BINS, alpha=0.5, num_batches=200)
    first = LanguageBatchSampler(utt2lang, utt2len, seed=7, **kwargs)
    second = LanguageBatchSampler(utt2lang, utt2len, seed=7, **kwargs)
    first.set_epoch(2)
    second.set_epoch(2)
    assert list(first) == list(second)
    second.set_epoch(3)
    assert list(first) != list(second)
    other_seed = LanguageBatchSampler(utt2lang, utt2len, seed=8, **kwargs)
    other_seed.set_epoch(2)
    assert list(first) != list(other_seed)


def test_accum_grad_groups_share_language(corpus):
    utt2lang, utt2len = corpus
    sampler = LanguageBatchSampler(
        utt2lang, utt2len, batch_bins=BINS, alpha=0.5, seed=1, accum_grad=3,
        num_batches=300,
    )
    langs = languages_of(list(sampler), utt2lang)
    groups = [set(langs[i : i + 3]) for i in range(0, len(langs), 3)]
    assert all(len(g) == 1 for g in groups)
    # groups are drawn independently, so neighbouring groups do differ
    assert len({next(iter(g)) for g in groups}) == len(SIZES)


def test_min_batch_size_repeats_for_tiny_language():
    utt2lang = {"a-0": "a", "a-1": "a", "b-0": "b"}
    utt2len = {"a-0": 100, "a-1": 100, "b-0": 100}
    sampler = LanguageBatchSampler(
        utt2lang, utt2len, batch_bins=150, alpha=0.0, seed=0, num_batches=50,
        min_batch_size=4,
    )
    for batch in sampler:
        assert len(batch) >= 4
        assert len({utt2lang[u] for u in batch}) == 1


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="'x-1' has a length but no language"):
        LanguageBatchSampler({}, {"x-1": 10}, batch_bins=100, alpha=0.5, seed=0)
    with pytest.raises(ValueError, match="multiple of accum_grad=4"):
        LanguageBatchSampler(
            {"x": "a"}, {"x": 10}, batch_bins=100, alpha=0.5, seed=0,
            accum_grad=4, num_batches=10,
        )
    with pytest.raises(ValueError, match="batch_bins"):
        LanguageBatchSampler({"x": "a"}, {"x": 10}, batch_bins=0, alpha=0.5, seed=0)


def test_coverage_sampler_covers_each_utterance_once(corpus):
    utt2lang, utt2len = corpus
    sampler = LanguageCoverageSampler(utt2lang, utt2len, batch_bins=BINS)
    batches = list(sampler)
    languages_of(batches, utt2lang)
    flat = [u for batch in batches for u in batch]
    assert sorted(flat) == sorted(utt2len)
    assert all(max(utt2len[u] for u in b) * len(b) <= BINS for b in batches)
    sampler.set_epoch(5)
    assert list(sampler) == batches
    padded = LanguageCoverageSampler(
        utt2lang, utt2len, batch_bins=BINS, min_batch_size=4
    )
    assert all(len(b) >= 4 for b in padded)
    assert set(u for b in padded for u in b) == set(utt2len)
