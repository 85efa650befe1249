"""Tests for the lesson 01/02 figures (helpers.plot.formats, helpers.plot.quantization) and
the lesson 02 explorer (helpers.explorer): they draw, label their axes, and refuse bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers import explorer, formats, quant
from helpers.plot import formats as format_plots
from helpers.plot import quantization as qplot

X = np.random.default_rng(0).normal(0, 0.05, 3000).astype(np.float32)


def labelled(fig) -> bool:
    axes = [ax for ax in fig.axes if ax.get_visible()]
    titled = any(ax.get_title() for ax in axes) or fig._suptitle is not None
    return titled and all(ax.get_xlabel() for ax in axes)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_bit_fields() -> None:
    fig = format_plots.bit_fields([formats.float_fields(0.1, f) for f in formats.FLOAT_FORMATS])
    assert labelled(fig)
    assert len(fig.axes[0].patches) >= 32 + 16 + 16 + 8 + 8
    with pytest.raises(ValueError, match="at least one FloatFields"):
        format_plots.bit_fields([])


def test_spacing_vs_magnitude_and_memory_bars() -> None:
    fig = format_plots.spacing_vs_magnitude(int_formats={"int8": 1.0})
    assert labelled(fig) and len(fig.axes[0].lines) == 6
    fig = format_plots.memory_bars({"a": formats.memory_table(10**6), "b": formats.memory_table(10**7)})
    assert labelled(fig) and fig.axes[0].get_ylabel().startswith("weights (MB")
    with pytest.raises(ValueError, match="needs"):
        format_plots.memory_bars({})


def test_intensity_vs_batch() -> None:
    batches = [1, 2, 4, 8]
    lines = {"fp32": [formats.arithmetic_intensity(b, 64, 64, 4) for b in batches]}
    fig = format_plots.intensity_vs_batch(batches, lines, machine_balance=10.0)
    assert labelled(fig) and fig.axes[0].get_yscale() == "log"


def test_levels_of_a_grid() -> None:
    grid = (0.5, 2, 0, 7)
    assert qplot.levels(grid).tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


def test_quantization_figures() -> None:
    scale, zero_point = quant.qparams(X.min(), X.max(), 4, symmetric=True)
    grid = (scale, zero_point, *quant.integer_range(4))
    x_hat = quant.fake_quantize(X, 4, True)
    assert labelled(qplot.grid_over_histogram(X, grid, log=True))
    assert labelled(qplot.mapping(grid, (float(X.min()), float(X.max()))))
    assert labelled(qplot.error_histogram(X, x_hat, scale))
    assert labelled(qplot.sqnr_vs_bits([2, 3, 4], [2.0, 8.0, 14.0], slope=6.0))
    assert labelled(qplot.rounding_vs_clipping([0.5, 1.0], [1e-5, 2e-5], [1e-5, 0.0], bits=4))
    fig = qplot.compare_grids(X, {"symmetric": grid})
    assert labelled(fig) and "levels used" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="at least one named grid"):
        qplot.compare_grids(X, {})


def test_explorer_state_and_render() -> None:
    state = explorer.State(bits=3, symmetric=True, clip=(-0.1, 0.05))
    scale, zero_point, qmin, qmax = state.grid(X)
    assert (zero_point, qmin, qmax) == (0, -4, 3)
    assert scale == quant.qparams(-0.1, 0.05, 3, True)[0]
    fig = explorer.render(X, state)
    assert len(fig.axes) == 3 and "clipping" in fig._suptitle.get_text()


def test_explorer_widget_renders_its_default_state_headless() -> None:
    import ipywidgets as widgets

    box = explorer.explorer(X)
    assert isinstance(box, widgets.VBox)
    bits_slider = box.children[0].children[0]
    bits_slider.value = 2  # an update runs the plotting code again, without a kernel
    assert plt.get_fignums() == []  # every figure is closed after it is shown


def test_explorer_refuses_bad_bits() -> None:
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 16"):
        explorer.render(X, explorer.State(bits=1))
