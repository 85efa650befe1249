"""helpers.stats: paired bootstrap, exact McNemar, agreement, logit KL and SQNR."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import stats


def _pair(n: int, gained: int, lost: int, seed: int = 0):
    """Labels and two prediction arrays with a known number of gains and losses."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n)
    base = y.copy()
    base[: n // 50] = (y[: n // 50] + 1) % 10          # the float model gets 2 % wrong
    cand = base.copy()
    cand[: gained] = y[: gained]                        # fixes some of those
    cand[n // 50 : n // 50 + lost] = (y[n // 50 : n // 50 + lost] + 3) % 10  # breaks others
    return y, base, cand


def test_mcnemar_exact_matches_hand_computed_binomial_tails():
    assert stats.mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)
    assert stats.mcnemar_exact_p(1, 9) == pytest.approx(2 * 11 / 1024)
    assert stats.mcnemar_exact_p(7, 7) == 1.0
    assert stats.mcnemar_exact_p(0, 0) == 1.0
    with pytest.raises(ValueError, match=">= 0"):
        stats.mcnemar_exact_p(-1, 3)


def test_identical_models_are_not_distinguishable():
    y, base, _ = _pair(10_000, 0, 0)
    result = stats.compare_predictions(y, base, base)
    assert result.delta_ci95 == (0.0, 0.0) and result.agreement == 1.0 and result.changed == 0
    assert not result.distinguishable
    assert "not distinguishable on 10,000 images" in result.verdict()


def test_a_clear_loss_is_distinguishable_and_counted():
    y, base, cand = _pair(10_000, gained=0, lost=80)
    result = stats.compare_predictions(y, base, cand)
    assert result.delta_points == pytest.approx(-0.8)
    assert result.lost == 80 and result.gained == 0 and result.changed == 80
    assert result.delta_ci95[1] < 0 and result.distinguishable
    assert result.mcnemar_p < 1e-10
    assert "worse" in result.verdict() and "not distinguishable" not in result.verdict()


def test_bootstrap_interval_agrees_with_the_normal_approximation():
    y, base, cand = _pair(10_000, gained=35, lost=50)
    result = stats.compare_predictions(y, base, cand)
    low, high = result.delta_ci95
    n, b, c = 10_000, 35, 50
    se = math.sqrt(b + c - (b - c) ** 2 / n) / n * 100
    assert low == pytest.approx(-0.15 - 1.96 * se, abs=0.03)
    assert high == pytest.approx(-0.15 + 1.96 * se, abs=0.03)
    assert low < 0 < high and not result.distinguishable  # 35 gained, 50 lost


def test_bootstrap_is_fixed_by_its_seed():
    y, base, cand = _pair(10_000, gained=37, lost=61)
    first = stats.compare_predictions(y, base, cand).delta_ci95
    assert stats.compare_predictions(y, base, cand).delta_ci95 == first
    others = {stats.compare_predictions(y, base, cand, seed=s).delta_ci95 for s in (1, 2, 3)}
    assert others != {first}  # a different seed draws different resamples


def test_record_fields():
    y, base, cand = _pair(1_000, gained=1, lost=4)
    record = stats.compare_predictions(y, base, cand).as_record()
    assert set(record) == {"test_images", "accuracy", "delta_points", "delta_ci95",
                           "agreement", "mcnemar_p"}
    assert record["test_images"] == 1_000 and len(record["delta_ci95"]) == 2


def test_mismatched_or_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="same length"):
        stats.compare_predictions([1, 2, 3], [1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="empty"):
        stats.compare_predictions([], [], [])


def test_logit_kl_and_sqnr():
    ref = np.array([[2.0, 0.0], [0.0, 1.0]])
    assert stats.logit_kl(ref, ref) == 0.0
    shifted = ref + 5.0  # softmax ignores a constant shift
    assert stats.logit_kl(ref, shifted) == pytest.approx(0.0, abs=1e-12)
    p = np.exp(2) / (1 + np.exp(2))
    q = 0.5
    expected_first = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    flat = np.array([[0.0, 0.0], [0.0, 1.0]])
    assert stats.logit_kl(ref, flat) == pytest.approx(expected_first / 2)
    assert stats.logit_sqnr_db(ref, ref) == math.inf
    assert stats.logit_sqnr_db(ref, ref * 1.1) == pytest.approx(10 * math.log10(1 / 0.01))
    with pytest.raises(ValueError, match="shape"):
        stats.logit_kl(ref, ref[:1])


def test_exact_interval_excludes_zero_exactly_when_mcnemar_rejects():
    for gained in range(0, 25):
        for lost in range(0, 25):
            low, high = stats.discordant_exact_ci(gained, lost, 10_000)
            excludes_zero = low > 0 or high < 0
            assert excludes_zero == (stats.mcnemar_exact_p(gained, lost) < 0.05), (gained, lost)
    with pytest.raises(ValueError, match="gained \\+ lost"):
        stats.discordant_exact_ci(5, 6, 10)


def test_a_handful_of_changed_answers_is_not_called_a_difference():
    # 7 lost, 1 gained: the bootstrap alone excludes 0, the exact test does not (p = 0.070).
    y, base, cand = _pair(10_000, gained=1, lost=7)
    bootstrap = stats.paired_bootstrap_ci(base == y, cand == y)
    assert bootstrap[1] < 0
    result = stats.compare_predictions(y, base, cand)
    assert result.mcnemar_p == pytest.approx(9 / 128)
    assert result.delta_ci95[0] <= bootstrap[0] and result.delta_ci95[1] > 0
    assert not result.distinguishable and "not distinguishable" in result.verdict()
