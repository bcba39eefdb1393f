import math
import time

import numpy as np
import pytest
from scipy.stats import binomtest

from espnet_s3net.scoring import statistics as st


def test_error_rate_and_mean_sd_by_hand():
    assert st.error_rate([1, 2, 0], [10, 10, 10]) == 10.0
    with pytest.raises(ValueError, match="no reference tokens"):
        st.error_rate([1], [0])
    assert st.mean_sd([10.0, 20.0, 30.0]) == (20.0, 10.0)
    mean, sd = st.mean_sd([12.5])
    assert mean == 12.5 and math.isnan(sd)
    with pytest.raises(ValueError, match="no seeds"):
        st.mean_sd([])


def test_resampled_sums_use_the_same_draws_for_every_column():
    columns = np.array([[1.0, 2.0, 10.0], [3.0, 6.0, 10.0], [0.0, 0.0, 10.0]])
    sums = st.resampled_sums(columns, 500, seed=1)
    assert sums.shape == (500, 3)
    assert np.array_equal(sums[:, 1], 2 * sums[:, 0])  # same utterances drawn for both columns
    assert np.all(sums[:, 2] == 30.0)  # every resample has 3 utterances
    assert np.array_equal(sums, st.resampled_sums(columns, 500, seed=1))
    assert not np.array_equal(sums, st.resampled_sums(columns, 500, seed=2))
    assert set(np.unique(sums[:, 0])) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 9.0}


def test_bootstrap_ci_degenerate_and_normal_approximation():
    # every utterance has the same rate: every resample has it too
    assert st.bootstrap_ci([1] * 50, [4] * 50, 200) == (25.0, 25.0)
    # one token per utterance, 0/1 errors: the rate's sd is sqrt(p (1 - p) / n)
    rng = np.random.default_rng(0)
    n = 2000
    errors = (rng.random(n) < 0.2).astype(int)
    p = errors.mean()
    lo, hi = st.bootstrap_ci(errors, np.ones(n), 4000, seed=0)
    half_width = 1.96 * 100 * math.sqrt(p * (1 - p) / n)
    assert lo < 100 * p < hi
    assert (hi - lo) / 2 == pytest.approx(half_width, rel=0.1)
    assert st.bootstrap_ci(errors, np.ones(n), 4000, seed=0) == (lo, hi)  # seeded


def test_sign_test_by_hand_and_against_scipy():
    result = st.sign_test([-1] * 9 + [2] + [0] * 5)
    # P(X <= 1) for X ~ Bin(10, 1/2) is 11 / 1024; two-sided: 22 / 1024
    assert result == st.SignTest(better=9, worse=1, ties=5, p=pytest.approx(22 / 1024))
    assert st.sign_test([0, 0]).p == 1.0
    for better, worse in ((0, 7), (30, 21), (120, 80)):
        expected = binomtest(better, better + worse, 0.5).pvalue
        assert st.sign_test([-0.5] * better + [1.0] * worse).p == pytest.approx(expected)


def test_identical_arms_show_no_difference():
    rng = np.random.default_rng(0)
    ref = rng.integers(3, 20, 300)
    errors = rng.binomial(ref, 0.2)
    test = st.paired_bootstrap(errors, errors, ref, 1000)
    assert test.difference == 0.0 and test.ci[0] <= 0.0 <= test.ci[1]
    assert test.p_bootstrap == 1.0 and test.sign == st.SignTest(0, 0, 300, 1.0)


def test_a_clearly_better_arm_is_significant_and_the_test_is_symmetric():
    rng = np.random.default_rng(1)
    ref = rng.integers(3, 20, 400)
    control = rng.binomial(ref, 0.25)
    better = np.maximum(control - rng.binomial(1, 0.5, 400), 0)
    test = st.paired_bootstrap(better, control, ref, 2000)
    assert test.difference < 0 and test.ci[1] < 0
    assert test.p_bootstrap < 0.05 and test.sign.p < 0.05 and test.sign.worse == 0
    swapped = st.paired_bootstrap(control, better, ref, 2000)
    assert swapped.difference == pytest.approx(-test.difference)
    assert swapped.ci == pytest.approx((-test.ci[1], -test.ci[0]))
    assert swapped.p_bootstrap == pytest.approx(test.p_bootstrap)


def test_paired_bootstrap_p_values_are_calibrated_without_a_difference():
    """Arms that differ only by chance (each utterance's two results swapped at random):
    about 5 % of p-values below 0.05."""
    rng = np.random.default_rng(2)
    ref = rng.integers(3, 20, 150)
    small = []
    for trial in range(150):
        a, b = rng.binomial(ref, 0.2), rng.binomial(ref, 0.2)
        small.append(st.paired_bootstrap(a, b, ref, 400, seed=trial).p_bootstrap < 0.05)
    assert 0.0 < np.mean(small) < 0.12


def test_groups_are_means_of_language_rates():
    groups = st.high_low_avg(["es", "fr", "sv-SE"], ["fr", "es"])
    assert groups == {"High": ["es", "fr"], "Low": ["sv-SE"], "Avg": ["es", "fr", "sv-SE"]}
    means = st.group_means({"es": 10.0, "fr": 20.0, "sv-SE": 60.0}, groups)
    assert means == {"High": 15.0, "Low": 60.0, "Avg": 30.0}
    with pytest.raises(ValueError, match="no rate for language.*sv-SE.*Low"):
        st.group_means({"es": 10.0, "fr": 20.0}, groups)
    with pytest.raises(ValueError, match="High language.*it.*not among"):
        st.high_low_avg(["es"], ["it"])


def _scores(rates_per_seed, n=200, seed=0):
    """LanguageScores with one token per utterance whose seeds have the given rates exactly."""
    utts = [f"u{i:04d}" for i in range(n)]
    rng = np.random.default_rng(seed)
    errors = np.zeros((len(rates_per_seed), n))
    for k, rate in enumerate(rates_per_seed):
        errors[k, rng.permutation(n)[: round(rate * n / 100)]] = 1
    return st.LanguageScores(utts, np.ones(n), errors)


def test_table_means_sds_and_groups_by_hand():
    scores = {"xlsr": {"es": _scores([10, 20, 30]), "fr": _scores([20, 20, 20]), "tr": _scores([40, 50, 60])},
              "s3net": {"es": _scores([10, 10]), "fr": _scores([15, 25]), "tr": _scores([30, 40])}}
    groups = st.high_low_avg(["es", "fr", "tr"], ["es", "fr"])
    table = st.TableBootstrap(scores, ["es", "fr", "tr"], groups, n_resamples=300)
    assert table.columns == ["es", "fr", "tr", "High", "Low", "Avg"]
    assert table.mean_sd("xlsr", "es") == pytest.approx((20.0, 10.0))
    # High of each seed: (10+20)/2, (20+20)/2, (30+20)/2
    assert table.seed_values("xlsr", "High") == pytest.approx([15.0, 20.0, 25.0])
    assert table.mean_sd("xlsr", "Avg") == pytest.approx(((20 + 20 + 50) / 3, 10 * 2 / 3))
    assert table.mean_sd("s3net", "Low") == pytest.approx((35.0, math.sqrt(50)))
    lo, hi = table.ci("xlsr", "Avg")
    assert lo < 30.0 < hi
    test = table.paired("s3net", "xlsr", "es")
    assert test.difference == pytest.approx(-10.0)
    assert table.paired("xlsr", "xlsr", "Avg").p_bootstrap == 1.0


def test_table_intervals_match_the_single_language_bootstrap_and_ignore_other_arms():
    es = _scores([17])
    table = st.TableBootstrap({"a": {"es": es}}, ["es"], n_resamples=500, seed=3)
    alone = st.bootstrap_ci(es.errors[0], es.ref_len, 500, seed=st.language_rng(3, "es"))
    assert table.ci("a", "es") == pytest.approx(alone)
    more = st.TableBootstrap({"b": {"es": _scores([30, 40])}, "a": {"es": es}}, ["es"], n_resamples=500, seed=3)
    assert more.ci("a", "es") == table.ci("a", "es")


def test_table_refuses_what_cannot_be_compared():
    es = _scores([10])
    with pytest.raises(ValueError, match="arm b has no scores for language.*fr"):
        st.TableBootstrap({"a": {"es": es, "fr": es}, "b": {"es": es}}, ["es", "fr"])
    other = st.LanguageScores([f"v{i}" for i in range(200)], np.ones(200), es.errors)
    with pytest.raises(ValueError, match="arms a and b were scored on different es test utterances.*only in a"):
        st.TableBootstrap({"a": {"es": es}, "b": {"es": other}}, ["es"])
    longer = st.LanguageScores(es.utts, np.full(200, 2.0), es.errors)
    with pytest.raises(ValueError, match="different es references.*u0000"):
        st.TableBootstrap({"a": {"es": es}, "b": {"es": longer}}, ["es"])
    with pytest.raises(ValueError, match="no seeds"):
        st.LanguageScores(es.utts, es.ref_len, np.zeros((0, 200)))
    with pytest.raises(ValueError, match="no arms"):
        st.TableBootstrap({}, ["es"])


def test_ten_thousand_resamples_of_three_thousand_utterances_are_fast():
    rng = np.random.default_rng(0)
    ref = rng.integers(5, 40, 3000)
    errors = rng.binomial(ref, 0.15)
    st.bootstrap_ci(errors[:10], ref[:10], 10)  # warm-up
    start = time.perf_counter()
    st.bootstrap_ci(errors, ref, 10_000)
    elapsed = time.perf_counter() - start
    # well under a second on an idle machine (about 0.1-0.3 s); the bound leaves room for a busy one
    assert elapsed < 3.0, elapsed
