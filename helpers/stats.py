"""Paired statistics for comparing a quantized model with its float model on the same images.

Introduced in lesson 03. Two classifiers answer the same test images, so their accuracies are
not independent: most images both get right, a few both get wrong, and only the images on
which they *disagree* carry information about which is better. Everything here uses that:

* :func:`paired_bootstrap_ci` resamples images (the same resample for both models) and gives a
  95 % interval for the accuracy change in points;
* :func:`mcnemar_exact_p` is the exact McNemar test on the discordant pairs, and
  :func:`discordant_exact_ci` the exact (Clopper-Pearson) interval that goes with it;
* :func:`compare_predictions` bundles them with the agreement (how many answers changed) into
  a :class:`PairedComparison` whose :meth:`~PairedComparison.verdict` is the sentence a lesson
  prints: "not distinguishable on 10,000 images" whenever the interval contains 0. Its interval
  spans both the bootstrap and the exact interval: with only a handful of changed answers
  the bootstrap alone is too narrow (it cannot resample a disagreement that did not happen;
  7 answers lost and 1 gained gives a bootstrap interval excluding 0 while McNemar's p is
  0.07), so the verdict never claims more than the exact test supports;
* :func:`logit_kl` and :func:`logit_sqnr_db` compare logits.

The bootstrap's seed is fixed, so a rerun prints the same interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 2_000


@dataclass(frozen=True)
class PairedComparison:
    """A candidate's accuracy against a baseline's on the same labelled images."""

    images: int
    baseline_accuracy: float
    accuracy: float
    delta_points: float
    delta_ci95: tuple[float, float]
    agreement: float
    changed: int
    gained: int
    lost: int
    mcnemar_p: float

    @property
    def distinguishable(self) -> bool:
        """True when the 95 % interval of the change excludes 0."""
        low, high = self.delta_ci95
        return low > 0 or high < 0

    def verdict(self, name: str = "the quantized model", baseline: str = "float") -> str:
        """One sentence computed from the interval, never typed: lesson 03."""
        low, high = self.delta_ci95
        change = (f"{self.delta_points:+.2f} points [95 % CI {low:+.2f}, {high:+.2f}], "
                  f"{self.changed:,} of {self.images:,} answers changed")
        if not self.distinguishable:
            return f"{name} vs {baseline}: {change}: not distinguishable on {self.images:,} images"
        direction = "better" if self.delta_points > 0 else "worse"
        return f"{name} vs {baseline}: {change}: {direction}, and the interval excludes 0"

    def as_record(self) -> dict:
        """The fields every accuracy-comparing record carries (see helpers.results)."""
        return {"test_images": self.images, "accuracy": self.accuracy,
                "delta_points": self.delta_points, "delta_ci95": list(self.delta_ci95),
                "agreement": self.agreement, "mcnemar_p": self.mcnemar_p}


def _labels(*arrays) -> list[np.ndarray]:
    out = [np.asarray(a).reshape(-1) for a in arrays]
    if len({a.shape for a in out}) != 1:
        shapes = ", ".join(str(a.shape) for a in out)
        raise ValueError(f"predictions and labels must be the same length (one per image), got {shapes}")
    if out[0].size == 0:
        raise ValueError("no images to compare: the prediction arrays are empty")
    return out


def paired_bootstrap_ci(correct_baseline: np.ndarray, correct_candidate: np.ndarray,
                        resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the accuracy change (points), resampling images in pairs."""
    a, b = _labels(correct_baseline, correct_candidate)
    diff = b.astype(np.float64) - a.astype(np.float64)
    rng = np.random.default_rng(seed)
    # Resample in chunks so 10,000 images x 2,000 resamples never needs 160 MB at once.
    means = []
    for start in range(0, resamples, 250):
        idx = rng.integers(0, diff.size, size=(min(250, resamples - start), diff.size))
        means.append(diff[idx].mean(axis=1))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(np.concatenate(means) * 100, [tail, 100 - tail])
    return float(low), float(high)


def discordant_exact_ci(gained: int, lost: int, images: int, level: float = 0.95
                        ) -> tuple[float, float]:
    """Exact interval of the accuracy change (points) from the discordant counts; lesson 00.

    Given the ``gained + lost`` images on which the two models disagree, ``lost`` is binomial;
    the Clopper-Pearson interval of its share, mapped to ``(gained - lost) / images``, excludes
    0 exactly when :func:`mcnemar_exact_p` is below ``1 - level``.
    """
    from scipy.stats import beta

    if min(gained, lost) < 0 or images < gained + lost or images < 1:
        raise ValueError(f"need 0 <= gained + lost <= images, got {gained}, {lost}, {images}")
    discordant = gained + lost
    if discordant == 0:
        return 0.0, 0.0
    alpha = 1 - level
    lost_low = beta.ppf(alpha / 2, lost, gained + 1) if lost > 0 else 0.0
    lost_high = beta.ppf(1 - alpha / 2, lost + 1, gained) if gained > 0 else 1.0
    share = discordant / images * 100
    return float(share * (1 - 2 * lost_high)), float(share * (1 - 2 * lost_low))


def mcnemar_exact_p(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts; lesson 03."""
    if gained < 0 or lost < 0:
        raise ValueError(f"discordant counts must be >= 0, got {gained} and {lost}")
    n = gained + lost
    if n == 0:
        return 1.0
    k = min(gained, lost)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def compare_predictions(labels, baseline_pred, candidate_pred,
                        resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> PairedComparison:
    """Accuracy change with its 95 % interval (the hull of the paired bootstrap and the exact
    interval), agreement and McNemar p; lesson 00."""
    y, p0, p1 = _labels(labels, baseline_pred, candidate_pred)
    right0, right1 = p0 == y, p1 == y
    gained = int(np.sum(~right0 & right1))
    lost = int(np.sum(right0 & ~right1))
    acc0, acc1 = float(right0.mean()), float(right1.mean())
    boot_low, boot_high = paired_bootstrap_ci(right0, right1, resamples=resamples, seed=seed)
    exact_low, exact_high = discordant_exact_ci(gained, lost, int(y.size))
    return PairedComparison(
        images=int(y.size),
        baseline_accuracy=acc0,
        accuracy=acc1,
        delta_points=(acc1 - acc0) * 100,
        delta_ci95=(min(boot_low, exact_low), max(boot_high, exact_high)),
        agreement=float(np.mean(p0 == p1)),
        changed=int(np.sum(p0 != p1)),
        gained=gained,
        lost=lost,
        mcnemar_p=mcnemar_exact_p(gained, lost),
    )


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def logit_kl(reference_logits, logits) -> float:
    """Mean KL(reference || candidate) of the softmax distributions, in nats; lesson 03."""
    ref = np.asarray(reference_logits, dtype=np.float64)
    got = np.asarray(logits, dtype=np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"logit arrays differ in shape: {ref.shape} vs {got.shape}")
    log_p, log_q = _log_softmax(ref), _log_softmax(got)
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)))


def logit_sqnr_db(reference_logits, logits) -> float:
    """Signal-to-quantization-noise ratio of candidate logits against the reference (dB)."""
    ref = np.asarray(reference_logits, dtype=np.float64)
    got = np.asarray(logits, dtype=np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"logit arrays differ in shape: {ref.shape} vs {got.shape}")
    noise = np.sum((ref - got) ** 2)
    if noise == 0:
        return math.inf
    return float(10 * np.log10(np.sum(ref**2) / noise))
