"""Wrong answers for the exercises of lesson 13 (pickers over the measured table); see harness.py.

The checks need only a table, so the context is a fixed table shaped like the notebook's:
every wrong answer drops one constraint, judges the budget the wrong way, optimizes the wrong
number or crashes when nothing qualifies.
"""

from harness import Case, case, solution

from helpers.exercises import lesson13

PENDING: set[str] = set()
BUDGET = 0.5


def _row(name, framework, needs, quantized, integer_only, size_kb, ms, ms64, val_delta, test_delta):
    return {"name": name, "framework": framework, "needs": needs, "quantized": quantized,
            "integer_only": integer_only, "size_bytes": int(size_kb * 1000), "latency_ms": ms,
            "latency_ms_batch64": ms64, "val_delta_points": val_delta,
            "val_delta_ci95": [val_delta - 0.2, val_delta + 0.2], "delta_points": test_delta,
            "delta_ci95": [test_delta - 0.15, test_delta + 0.15], "accuracy": 0.99 + test_delta / 100}


ROWS = [
    _row("pytorch-fp32", "pytorch", "nothing", False, False, 1350, 4.0, 140, 0.0, 0.0),
    _row("pytorch-fp32-fused", "pytorch", "nothing", False, False, 1330, 3.1, 110, 0.0, 0.0),
    _row("pytorch-dynamic", "pytorch", "nothing", True, False, 1340, 3.2, 112, 0.0, 0.0),
    _row("pytorch-static-eager", "pytorch", "calibration", True, False, 390, 2.2, 60, -0.1, -0.1),
    _row("pytorch-static-fx", "pytorch", "calibration", True, False, 385, 2.1, 52, -0.1, -0.05),
    _row("pytorch-qat", "pytorch", "training", True, False, 390, 2.2, 61, 0.05, 0.1),
    _row("tflite-fp32", "tflite", "nothing", False, False, 1320, 1.0, 50, 0.0, 0.0),
    _row("tflite-dynamic", "tflite", "nothing", True, False, 360, 1.6, 95, -0.05, 0.0),
    _row("tflite-int8", "tflite", "calibration", True, True, 380, 0.9, 40, -0.2, -0.15),
    _row("tflite-float16", "tflite", "nothing", True, False, 680, 1.0, 50, 0.0, 0.0),
    _row("tflite-16x8", "tflite", "calibration", True, False, 420, 20.0, 1300, 0.0, 0.0),
    _row("keras-qat-int8", "tflite", "training", True, True, 381, 0.9, 40, 0.0, 0.05),
]


def _pick(rows, budget, keep, key, within=lambda r, b: r["val_delta_ci95"][0] >= -b):
    ok = [r for r in rows if keep(r) and within(r, budget)]
    return min(ok, key=lambda r: r[key])["name"] if ok else None


def _no_budget(r, b):
    return True


def _point_estimate(r, b):
    return r["val_delta_points"] >= -b


def _test_split(r, b):
    return r["delta_ci95"][0] >= -b


def _crashing(keep, key):
    def picker(rows, budget):
        ok = [r for r in rows if keep(r) and r["val_delta_ci95"][0] >= -budget]
        return min(ok, key=lambda r: r[key])["name"]  # min() of nothing raises
    return picker


def _integer(r):
    return r["integer_only"]


@case("13", "pick_for_microcontroller",
      mistakes=("no_budget_filter", "budget_on_point_estimate", "budget_on_test_split",
                "ignores_integer_only", "fastest_instead_of_smallest",
                "crashes_when_nothing_qualifies"))
def _microcontroller() -> Case:
    return Case(
        check=lesson13.check_pick_for_microcontroller,
        reference=solution("13", "pick_for_microcontroller"),
        wrong={
            "no_budget_filter": lambda rows, b: _pick(rows, b, _integer, "size_bytes", _no_budget),
            "budget_on_point_estimate": lambda rows, b: _pick(rows, b, _integer, "size_bytes",
                                                              _point_estimate),
            "budget_on_test_split": lambda rows, b: _pick(rows, b, _integer, "size_bytes", _test_split),
            "ignores_integer_only": lambda rows, b: _pick(rows, b, lambda r: True, "size_bytes"),
            "fastest_instead_of_smallest": lambda rows, b: _pick(rows, b, _integer, "latency_ms"),
            "crashes_when_nothing_qualifies": _crashing(_integer, "size_bytes"),
        },
        context={"rows": ROWS, "budget_points": BUDGET})


def _pytorch(r):
    return r["framework"] == "pytorch"


@case("13", "pick_for_server",
      mistakes=("no_budget_filter", "budget_on_point_estimate", "any_framework",
                "batch_1_latency_instead_of_batch_64", "crashes_when_nothing_qualifies"))
def _server() -> Case:
    return Case(
        check=lesson13.check_pick_for_server,
        reference=solution("13", "pick_for_server"),
        wrong={
            "no_budget_filter": lambda rows, b: _pick(rows, b, _pytorch, "latency_ms_batch64",
                                                      _no_budget),
            "budget_on_point_estimate": lambda rows, b: _pick(rows, b, _pytorch, "latency_ms_batch64",
                                                              _point_estimate),
            "any_framework": lambda rows, b: _pick(rows, b, lambda r: True, "latency_ms_batch64"),
            "batch_1_latency_instead_of_batch_64": lambda rows, b: _pick(rows, b, _pytorch,
                                                                         "latency_ms"),
            "crashes_when_nothing_qualifies": _crashing(_pytorch, "latency_ms_batch64"),
        },
        context={"rows": ROWS, "budget_points": BUDGET})


def _data_free(r):
    return r["needs"] == "nothing" and r["quantized"]


@case("13", "pick_without_data",
      mistakes=("no_budget_filter", "budget_on_test_split", "counts_the_float_models",
                "ignores_what_the_method_needs", "fastest_instead_of_smallest"))
def _without_data() -> Case:
    return Case(
        check=lesson13.check_pick_without_data,
        reference=solution("13", "pick_without_data"),
        wrong={
            "no_budget_filter": lambda rows, b: _pick(rows, b, _data_free, "size_bytes", _no_budget),
            "budget_on_test_split": lambda rows, b: _pick(rows, b, _data_free, "size_bytes",
                                                          _test_split),
            "counts_the_float_models": lambda rows, b: _pick(rows, b, lambda r: r["needs"] == "nothing",
                                                             "size_bytes"),
            "ignores_what_the_method_needs": lambda rows, b: _pick(rows, b, lambda r: r["quantized"],
                                                                   "size_bytes"),
            "fastest_instead_of_smallest": lambda rows, b: _pick(rows, b, _data_free, "latency_ms"),
        },
        context={"rows": ROWS, "budget_points": BUDGET})
