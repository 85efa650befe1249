"""An interactive quantization explorer (ipywidgets) for lesson 02.

Drag the bit width, switch symmetric / asymmetric and narrow the clipping range, and watch the
grid over the histogram, the x -> x_hat staircase and the error histogram update. Without a
live kernel (papermill, nbval, CI) the widget still renders its default state once, so an
error in the plotting code fails the run instead of hiding until a student drags a slider.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from helpers import quant
from helpers.plot import _as_numpy
from helpers.plot import quantization as qplot


@dataclass(frozen=True)
class State:
    """What the explorer shows: a bit width, a scheme and a clipping range; lesson 02."""

    bits: int = 4
    symmetric: bool = False
    clip: tuple[float, float] | None = None  # None: the tensor's own min and max

    def grid(self, x: np.ndarray) -> qplot.Grid:
        lo, hi = self.clip if self.clip is not None else (float(x.min()), float(x.max()))
        scale, zero_point = quant.qparams(lo, hi, self.bits, self.symmetric)
        qmin, qmax = quant.integer_range(self.bits, signed=self.symmetric)
        return scale, zero_point, qmin, qmax


def render(x, state: State = State()):
    """The explorer's figure for one state: grid, staircase and error; lesson 02."""
    x = _as_numpy(x).astype(np.float32)
    grid = state.grid(x)
    x_hat = quant.dequantize(quant.quantize(x, *grid), grid[0], grid[1])
    rounding, clipping = quant.error_split(x, *grid)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), gridspec_kw={"width_ratios": [2, 1.2, 1.4]})
    # log counts: a spike (ReLU zeros, small weights) would otherwise flatten everything else
    qplot.grid_over_histogram(x, grid, ax=axes[0], log=True)
    qplot.mapping(grid, (float(x.min()), float(x.max())), ax=axes[1])
    qplot.error_histogram(x, x_hat, grid[0], ax=axes[2], log=True)
    scheme = "symmetric, signed" if state.symmetric else "asymmetric, unsigned"
    fig.suptitle(f"{state.bits} bits, {scheme}: MSE {rounding + clipping:.3g} "
                 f"(rounding {rounding:.3g} + clipping {clipping:.3g}), "
                 f"SQNR {quant.sqnr_db(x, x_hat):.1f} dB")
    fig.tight_layout()
    return fig


def explorer(x, state: State = State()):
    """Sliders for bits, scheme and clipping range over a tensor's quantization; lesson 02."""
    import ipywidgets as widgets
    from IPython.display import display

    x = _as_numpy(x).astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    bits = widgets.IntSlider(value=state.bits, min=2, max=8, description="bits")
    scheme = widgets.ToggleButtons(options=[("asymmetric", False), ("symmetric", True)],
                                   value=state.symmetric, description="scheme")
    clip = widgets.FloatRangeSlider(value=state.clip or (lo, hi), min=lo, max=hi,
                                    step=(hi - lo) / 200, description="clip range",
                                    readout_format=".3f", layout=widgets.Layout(width="60%"))
    out = widgets.Output()

    def update(_change=None) -> None:
        figure = render(x, State(bits.value, scheme.value, tuple(clip.value)))
        with out:
            out.clear_output(wait=True)
            display(figure)
        plt.close(figure)  # shown once, inside the output area, not again below the cell

    for control in (bits, scheme, clip):
        control.observe(update, names="value")
    update()  # draw the default state now, with or without a live kernel
    return widgets.VBox([widgets.HBox([bits, scheme]), clip, out])
