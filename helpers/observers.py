"""Calibration observers on NumPy arrays: which range [lo, hi] should an activation get? Lesson 03.

An observer watches batches of an activation during calibration and then proposes the range
that :func:`helpers.quant.qparams` turns into a scale and zero point:

* :class:`MinMaxObserver`: the smallest and largest value ever seen (PyTorch's default);
  one outlier stretches the range and every other value gets a coarser grid;
* :class:`MovingAverageMinMaxObserver`: an exponential average of each batch's min and max
  (PyTorch's choice for QAT), so a single extreme batch counts less;
* :class:`PercentileObserver`: clip at a percentile of a histogram of everything seen;
* :class:`MSEObserver`: the clipping range that minimises the quantization error
  (rounding error inside plus clipping error outside) on that histogram.
"""

from __future__ import annotations

import numpy as np

from helpers import quant


def _batch(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).ravel()
    if x.size == 0:
        raise ValueError("the observer got an empty batch: pass at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError("the batch holds NaN or inf; an observer needs finite activations "
                         "(look for a division by zero or an exploding layer upstream)")
    return x


def quantization_mse(x, lo: float, hi: float, bits: int = 8, symmetric: bool = False) -> float:
    """MSE of fake-quantizing ``x`` with the range [lo, hi] (values outside are clipped); lesson 03."""
    x = _batch(x)
    scale, zp = quant.qparams(lo, hi, bits, symmetric)
    qmin, qmax = quant.integer_range(bits, signed=symmetric)
    return quant.mse(x, quant.dequantize(quant.quantize(x, scale, zp, qmin, qmax), scale, zp))


def percentile_range(x, percentile: float = 99.99) -> tuple[float, float]:
    """Clip both tails: (the (100 - p)-th, the p-th percentile) of ``x``; lesson 03."""
    if not 50 < percentile <= 100:
        raise ValueError(f"percentile must be in (50, 100], got {percentile}")
    x = _batch(x)
    lo, hi = np.percentile(x, [100 - percentile, percentile])
    return float(lo), float(hi)


def mse_optimal_range(x, bits: int = 8, symmetric: bool = False, grid: int = 100,
                      weights=None) -> tuple[float, float]:
    """The range [a·min, a·max], a in {1/grid, ..., 1}, with the lowest quantization MSE; lesson 03.

    ``weights`` (counts) lets ``x`` be histogram bin centres instead of raw values.
    """
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    x = _batch(x)
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w is not None and w.shape != x.shape:
        raise ValueError(f"weights must match x: {w.shape} vs {x.shape}")
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    qmin, qmax = quant.integer_range(bits, signed=symmetric)
    best, best_err = (lo, hi), np.inf
    for a in np.arange(1, grid + 1) / grid:
        scale, zp = quant.qparams(a * lo, a * hi, bits, symmetric)
        err = (x - quant.dequantize(quant.quantize(x, scale, zp, qmin, qmax), scale, zp)) ** 2
        err = float(np.average(err, weights=w))
        if err < best_err:  # strict: ties keep the smaller clip found first
            best, best_err = (a * lo, a * hi), err
    return float(best[0]), float(best[1])


class MinMaxObserver:
    """Running minimum and maximum of every batch seen; lesson 03."""

    def __init__(self) -> None:
        self.min: float | None = None
        self.max: float | None = None
        self.batches = 0

    def update(self, x) -> None:
        """Look at one calibration batch."""
        x = _batch(x)
        lo, hi = float(x.min()), float(x.max())
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        self.batches += 1

    def _require_data(self) -> None:
        if self.batches == 0:
            raise RuntimeError(f"{type(self).__name__} has seen no data, so it has no range: "
                               "run calibration batches through update() first")

    def range(self) -> tuple[float, float]:
        """The proposed (lo, hi)."""
        self._require_data()
        return self.min, self.max

    def qparams(self, bits: int = 8, symmetric: bool = False) -> tuple[float, int]:
        """Scale and zero point for the proposed range."""
        lo, hi = self.range()
        return quant.qparams(lo, hi, bits, symmetric)


class MovingAverageMinMaxObserver(MinMaxObserver):
    """min ← min + c·(batch_min − min), likewise max, as PyTorch's (c = 0.01); lesson 03."""

    def __init__(self, averaging_constant: float = 0.01) -> None:
        super().__init__()
        if not 0 < averaging_constant <= 1:
            raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant}")
        self.c = averaging_constant

    def update(self, x) -> None:
        x = _batch(x)
        lo, hi = float(x.min()), float(x.max())
        if self.batches == 0:
            self.min, self.max = lo, hi
        else:
            self.min += self.c * (lo - self.min)
            self.max += self.c * (hi - self.max)
        self.batches += 1


class HistogramObserver(MinMaxObserver):
    """A fixed number of bins over the running [min, max], re-binned when the range grows."""

    def __init__(self, bins: int = 2048) -> None:
        super().__init__()
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.bins = bins
        self.counts = np.zeros(bins)

    def _edges(self) -> np.ndarray:
        return np.linspace(self.min, self.max, self.bins + 1)

    def update(self, x) -> None:
        x = _batch(x)
        old_edges = None if self.batches == 0 else self._edges()
        super().update(x)
        if old_edges is not None and (old_edges[0] != self.min or old_edges[-1] != self.max):
            # Move each old bin's count to the new bin holding its centre.
            centres = (old_edges[:-1] + old_edges[1:]) / 2
            moved, _ = np.histogram(centres, bins=self._edges(), weights=self.counts)
            self.counts = moved
        added, _ = np.histogram(x, bins=self._edges())
        self.counts = self.counts + added

    def centres(self) -> np.ndarray:
        edges = self._edges()
        return (edges[:-1] + edges[1:]) / 2

    def range(self) -> tuple[float, float]:
        self._require_data()
        return self.min, self.max


class PercentileObserver(HistogramObserver):
    """Clip at the p-th percentile (and the (100 − p)-th) of the histogram; lesson 03."""

    def __init__(self, percentile: float = 99.99, bins: int = 2048) -> None:
        super().__init__(bins)
        if not 50 < percentile <= 100:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile

    def range(self) -> tuple[float, float]:
        self._require_data()
        cdf = np.cumsum(self.counts) / self.counts.sum()
        edges = self._edges()
        lo = edges[np.searchsorted(cdf, (100 - self.percentile) / 100)]
        hi = edges[min(np.searchsorted(cdf, self.percentile / 100) + 1, self.bins)]
        return float(min(lo, 0.0) if self.min >= 0 else lo), float(hi)


class MSEObserver(HistogramObserver):
    """The clip range with the lowest quantization MSE over the histogram; lesson 03."""

    def __init__(self, bits: int = 8, symmetric: bool = False, grid: int = 100,
                 bins: int = 2048) -> None:
        super().__init__(bins)
        quant.integer_range(bits)  # validates bits
        self.bits, self.symmetric, self.grid = bits, symmetric, grid

    def range(self) -> tuple[float, float]:
        self._require_data()
        keep = self.counts > 0
        return mse_optimal_range(self.centres()[keep], self.bits, self.symmetric, self.grid,
                                 weights=self.counts[keep])


OBSERVERS = {
    "min-max": MinMaxObserver,
    "moving-average": MovingAverageMinMaxObserver,
    "percentile": PercentileObserver,
    "mse": MSEObserver,
}
