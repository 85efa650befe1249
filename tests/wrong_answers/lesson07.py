"""Wrong answers for the exercises of lesson 07; see harness.py."""

import torch
from harness import Case, case, solution
from torch.ao.quantization import QConfigMapping, get_default_qconfig

from helpers import data, stats
from helpers.exercises import lesson07

# Exercises whose checks still live inline in the notebook. May only shrink.
PENDING: set[str] = set()


@case("07", "calibrate", mistakes=("calibrates_on_the_test_split", "drops_the_last_partial_batch",
                                   "returns_batches_not_images"))
def _calibrate() -> Case:
    reference = solution("07", "calibrate", torch=torch, data=data)

    def run(prepared, x, starts):
        with torch.inference_mode():
            for start in starts:
                prepared(x[start : start + starts.step])

    def calibrates_on_the_test_split(prepared, split, batch_size=32):
        x, _ = data.torch_tensors(split)
        run(prepared, x, range(0, len(x), batch_size))
        return len(x)

    def drops_the_last_partial_batch(prepared, split, batch_size=32):
        data.require_selection_split(split, "calibrate")
        x, _ = data.torch_tensors(split)
        run(prepared, x, range(0, len(x) - batch_size + 1, batch_size))
        return len(x)

    def returns_batches_not_images(prepared, split, batch_size=32):
        data.require_selection_split(split, "calibrate")
        x, _ = data.torch_tensors(split)
        starts = range(0, len(x), batch_size)
        run(prepared, x, starts)
        return len(starts)

    return Case(check=lesson07.check_calibrate, reference=reference,
                wrong={"calibrates_on_the_test_split": calibrates_on_the_test_split,
                       "drops_the_last_partial_batch": drops_the_last_partial_batch,
                       "returns_batches_not_images": returns_batches_not_images})


@case("07", "keep_in_float", mistakes=("global_none_and_the_layer_quantized", "no_global_qconfig",
                                       "default_qconfig_instead_of_none"))
def _keep_in_float() -> Case:
    reference = solution("07", "keep_in_float", QConfigMapping=QConfigMapping,
                         get_default_qconfig=get_default_qconfig)

    def global_none_and_the_layer_quantized(name):
        return QConfigMapping().set_global(None).set_module_name(name, get_default_qconfig("x86"))

    def no_global_qconfig(name):
        return QConfigMapping().set_module_name(name, None)

    def default_qconfig_instead_of_none(name):
        qconfig = get_default_qconfig("x86")
        return QConfigMapping().set_global(qconfig).set_module_name(name, qconfig)

    return Case(check=lesson07.check_keep_in_float, reference=reference,
                wrong={"global_none_and_the_layer_quantized": global_none_and_the_layer_quantized,
                       "no_global_qconfig": no_global_qconfig,
                       "default_qconfig_instead_of_none": default_qconfig_instead_of_none})


@case("07", "choose_model", mistakes=("decides_on_the_test_split", "point_estimate_instead_of_interval",
                                      "most_accurate_ignoring_latency", "upper_end_of_the_interval",
                                      "never_falls_back_to_fp32", "fp32_never_races_on_latency"))
def _choose_model() -> Case:
    reference = solution("07", "choose_model", data=data, stats=stats)

    def rule(split, predict, latency_ms, budget_points, accept, key=None, guard=True, fallback=True,
             race_fp32=True):
        if guard:
            data.require_selection_split(split, "choose_model")
        baseline = predict["fp32"](split)
        accepted = [name for name, fn in predict.items() if name != "fp32"
                    and accept(stats.compare_predictions(split.y, baseline, fn(split)), budget_points)]
        if not accepted and fallback:
            return "fp32"
        return min(accepted + (["fp32"] if race_fp32 else []), key=key or (lambda name: latency_ms[name]))

    def lower(c, b):
        return c.delta_ci95[0] >= -b

    def decides_on_the_test_split(split, predict, latency_ms, budget_points=0.3):
        return rule(split, predict, latency_ms, budget_points, lower, guard=False)

    def point_estimate_instead_of_interval(split, predict, latency_ms, budget_points=0.3):
        return rule(split, predict, latency_ms, budget_points, lambda c, b: c.delta_points >= -b)

    def most_accurate_ignoring_latency(split, predict, latency_ms, budget_points=0.3):
        baseline = predict["fp32"](split)
        deltas = {name: stats.compare_predictions(split.y, baseline, fn(split)).delta_points
                  for name, fn in predict.items() if name != "fp32"}
        return rule(split, predict, latency_ms, budget_points, lower, key=lambda n: -deltas[n],
                    race_fp32=False)

    def upper_end_of_the_interval(split, predict, latency_ms, budget_points=0.3):
        return rule(split, predict, latency_ms, budget_points, lambda c, b: c.delta_ci95[1] >= -b)

    def never_falls_back_to_fp32(split, predict, latency_ms, budget_points=0.3):
        return rule(split, predict, latency_ms, budget_points, lower, fallback=False, race_fp32=False)

    def fp32_never_races_on_latency(split, predict, latency_ms, budget_points=0.3):
        return rule(split, predict, latency_ms, budget_points, lower, race_fp32=False)

    return Case(check=lesson07.check_choose_model, reference=reference,
                wrong={"decides_on_the_test_split": decides_on_the_test_split,
                       "point_estimate_instead_of_interval": point_estimate_instead_of_interval,
                       "most_accurate_ignoring_latency": most_accurate_ignoring_latency,
                       "upper_end_of_the_interval": upper_end_of_the_interval,
                       "never_falls_back_to_fp32": never_falls_back_to_fp32,
                       "fp32_never_races_on_latency": fp32_never_races_on_latency})
