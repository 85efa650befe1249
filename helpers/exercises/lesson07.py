"""Checks for the exercises of lesson 07 (PT2E first, then the deprecated FX flow).

* ``calibrate``: a PT2E-prepared tiny model and a split whose brightest image sits in the
  last, partial batch, so dropping that batch shows in the observers; a test-role split must
  be refused (calibration chooses every activation range);
* ``keep_in_float``: the mapping's global qconfig, the one override, and what FX builds from
  it (the named layer float, its neighbour int8);
* ``choose_model``: synthetic validation predictions where the point estimate, the interval
  and the latency each point to a different candidate, a case where nothing fits the budget,
  and a test-role split that must be refused.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

import numpy as np
import torch

from helpers import checks, data, fx, models, pt2e, stats


def _run(what: str, function: Callable, *args, hint: str, **kwargs):
    """Call the student's code; a crash becomes an ExerciseError with a hint (stubs stay friendly)."""
    try:
        return checks.attempt(function, *args, **kwargs)
    except (checks.ExerciseError, checks.NotWrittenYet):
        raise
    except data.SelectionOnTestError:
        raise
    except Exception as err:  # noqa: BLE001 - any crash of the student's code is reported
        checks.fail(f"{what} raised {type(err).__name__}", "no error", str(err)[:200], hint)


def _expect_refusal(what: str, function: Callable, *args, **kwargs) -> None:
    try:
        checks.attempt(function, *args, **kwargs)
    except data.SelectionOnTestError:
        checks.passed(f"{what} refuses the test split.")
        return
    except (checks.ExerciseError, checks.NotWrittenYet):
        raise
    except Exception as err:  # noqa: BLE001
        checks.fail(f"{what} on the test split raised {type(err).__name__}",
                    "data.SelectionOnTestError", str(err)[:200],
                    "refuse the split with data.require_selection_split before using it")
    checks.fail(f"{what} on the test split", "data.SelectionOnTestError", "it ran",
                "the test split gives the final number only: refuse it with "
                "data.require_selection_split before using the data")


# ---------------------------------------------------------------- Exercise 1: calibrate

@functools.cache
def _prepared_template() -> torch.fx.GraphModule:
    torch.manual_seed(0)
    tiny = models.SmallCNN(width=8, eager=False).eval()
    return pt2e.prepare(tiny, torch.zeros(1, 1, 28, 28),
                        quantizer=pt2e.x86_quantizer(reduce_range=False))


def _ranges(prepared: torch.nn.Module) -> list[tuple[float, float]]:
    return [(float(m.min_val.min()), float(m.max_val.max()))
            for name, m in sorted(prepared.named_modules()) if "activation_post_process" in name
            and hasattr(m, "min_val") and m.min_val.numel()]


def _calib_split(role: str) -> data.Split:
    rng = np.random.default_rng(0)
    x = (rng.random((10, 28, 28)) * 0.3).astype(np.float32)
    x[-1] = 1.0  # the brightest image is the last one, in a partial batch of 4
    return data.Split(x, np.zeros(10, dtype=np.int64), role)


def check_calibrate(student: Callable) -> None:
    """Every image of a non-test split, in batches, through a PT2E-prepared model; lesson 07, Exercise 1."""
    mine, reference = copy.deepcopy(_prepared_template()), copy.deepcopy(_prepared_template())
    split = _calib_split("calib")
    seen = _run("calibrate", student, mine, split, 4,
                hint="turn the split into input tensors with data.torch_tensors and run them "
                     "batch by batch")
    pt2e.calibrate(reference, split, batch_size=4)
    checks.check_equal("images seen", seen, len(split),
                       hint="return how many images you ran through the model")
    checks.check_close("observed activation ranges", _ranges(mine), _ranges(reference),
                       hint="run every batch, including the last one, which is smaller than "
                            "batch_size: step through the images, do not assume full batches")
    _expect_refusal("calibrate", student, copy.deepcopy(_prepared_template()),
                    _calib_split("test"), 4)


# ---------------------------------------------------------------- Exercise 2: keep_in_float

def check_keep_in_float(student: Callable) -> None:
    """x86 default everywhere except one module, which FX leaves in float; lesson 07, Exercise 2."""
    from torch.ao.quantization import QConfigMapping

    torch.manual_seed(0)
    tiny = models.SmallCNN(width=8, eager=False).eval()
    mapping = _run("keep_in_float", student, "res_b.0", hint="build and return a QConfigMapping")
    checks.check_true(isinstance(mapping, QConfigMapping), "returns a QConfigMapping",
                      hint="start from an empty QConfigMapping()", got=type(mapping).__name__)
    checks.check_true(mapping.global_qconfig is not None, "a global qconfig is set",
                      hint="every other layer needs the x86 default qconfig as the global one",
                      got=None)
    checks.check_equal("modules overridden", sorted(mapping.module_name_qconfigs), ["res_b.0"],
                       hint="override exactly one module, by the name you were given")
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    built = _run("fx.quantize with your mapping", fx.quantize, tiny, mapping, x[:1], x,
                 hint="the override must be a qconfig or None")
    kinds = {n: type(m).__module__ for n, m in built.named_modules()}
    checks.check_true(kinds["res_b.0"].startswith("torch.nn.") and "quantized" in kinds["res_a.0"],
                      "res_b.0 stays float while res_a.0 is quantized",
                      hint="the override for the named module must say 'no quantization'",
                      got={k: kinds[k] for k in ("res_a.0", "res_b.0")})


# ---------------------------------------------------------------- Exercise 3: choose_model

_LATENCY = {"fast": 1.0, "noisy": 1.5, "close": 2.0, "fp32": 2.5, "exact": 3.0}


def _scenario(role: str) -> tuple[data.Split, dict[str, Callable], dict[str, float]]:
    """Synthetic val predictions: 'fast' loses 1.5 points; 'noisy' changes 60 answers for a net
    -0.1 point (its interval reaches far below -0.3); 'close' changes 4; 'exact' gains 1."""
    n = 2000
    rng = np.random.default_rng(7)
    y = rng.integers(0, 10, n)
    wrong = lambda labels, idx: np.where(np.isin(np.arange(n), idx), (labels + 1) % 10, labels)  # noqa: E731
    fp32 = wrong(y, np.arange(40))  # 98.0 %
    preds = {"fp32": fp32,
             "fast": wrong(fp32, np.arange(100, 130)),
             "noisy": np.where(np.isin(np.arange(n), np.arange(29)), y,
                               wrong(fp32, np.arange(200, 231))),
             "close": np.where(np.isin(np.arange(n), [0, 1]), y, wrong(fp32, [300, 301])),
             "exact": np.where(np.arange(n) == 0, y, fp32)}
    split = data.Split(np.zeros((n, 28, 28), dtype=np.float32), y, role)
    predict = {name: (lambda s, p=p: p.copy()) for name, p in preds.items()}
    return split, predict, dict(_LATENCY)


def check_choose_model(student: Callable) -> None:
    """Fastest candidate whose whole paired interval fits the budget, on val; lesson 07, Exercise 3."""
    split, predict, latency = _scenario("val")
    comparisons = {name: stats.compare_predictions(split.y, predict["fp32"](split), p(split))
                   for name, p in predict.items() if name != "fp32"}
    table = {name: f"{c.delta_points:+.2f} [{c.delta_ci95[0]:+.2f}, {c.delta_ci95[1]:+.2f}]"
             for name, c in comparisons.items()}
    got = _run("choose_model", student, split, predict, latency, 0.3,
               hint="compare each candidate with fp32 on the given split")
    checks.check_equal("the choice with a 0.3-point budget", got, "close",
                       hint=f"changes vs fp32 on these val images, in points [95 % CI]: {table}. "
                            "Accept a candidate only if its whole interval stays above -budget "
                            "(the point estimate can hide a loss); among those, take the lowest "
                            "latency")
    risky = {name: predict[name] for name in ("fp32", "fast", "noisy")}
    fallback = _run("choose_model", student, split, risky, latency, 0.3,
                    hint="when no candidate fits the budget, keep the float model")
    checks.check_equal("the choice when only 'fast' and 'noisy' are offered", fallback, "fp32",
                       hint="neither interval stays above -budget: return 'fp32'")
    quick_float = {**latency, "fp32": 1.8}
    raced = _run("choose_model", student, split, predict, quick_float, 0.3,
                 hint="fp32 is always a valid choice; it competes on latency like the others")
    checks.check_equal("the choice when fp32 (1.8 ms) is faster than 'close' (2.0 ms)", raced, "fp32",
                       hint="an int8 model slower than the float one buys nothing: let fp32 race "
                            "on latency with the accepted candidates")
    test_split, predict, latency = _scenario("test")
    _expect_refusal("choose_model", student, test_split, predict, latency, 0.3)
