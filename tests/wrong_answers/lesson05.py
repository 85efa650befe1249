"""Wrong answers for the exercises of lesson 05; see harness.py."""

import torch
from harness import Case, case, solution
from torch import nn
from torch.ao.quantization.quantization_mappings import get_default_dynamic_quant_module_mappings

from helpers import dynamic, measure
from helpers import torchao_dynamic as tdyn
from helpers.exercises import lesson05

# Exercises whose checks still live inline in the notebook. May only shrink.
PENDING: set[str] = set()

DYNAMIC_SUPPORTED = set(get_default_dynamic_quant_module_mappings())


@case("05", "dynamic_targets", mistakes=("leaf_type_only", "isinstance_instead_of_exact_type",
                                         "ignores_dynamic_mapping", "root_not_a_container"))
def _dynamic_targets() -> Case:
    reference = solution("05", "dynamic_targets", nn=nn, DYNAMIC_SUPPORTED=DYNAMIC_SUPPORTED)

    def leaf_type_only(model, types=(nn.Linear,)):
        # The old reference: a qconfig never flows from a listed parent to its children.
        return [name for name, module in model.named_modules()
                if name and type(module) in set(types) and type(module) in DYNAMIC_SUPPORTED]

    def covered_by(model, types, include_root=True):
        modules = dict(model.named_modules())

        def covered(name):
            parts = name.split(".")
            first = 0 if include_root else 1
            return any(type(modules[".".join(parts[:i])]) in set(types)
                       for i in range(first, len(parts) + 1))

        return modules, covered

    def isinstance_instead_of_exact_type(model, types=(nn.Linear,)):
        modules, covered = covered_by(model, types)
        listed = tuple(types)
        return [name for name, module in modules.items()
                if name and type(module) in DYNAMIC_SUPPORTED
                and (covered(name) or isinstance(module, listed))]

    def ignores_dynamic_mapping(model, types=(nn.Linear,)):
        # Everything that receives a qconfig, containers, ReLUs and Conv2d included.
        modules, covered = covered_by(model, types)
        return [name for name in modules if name and covered(name)]

    def root_not_a_container(model, types=(nn.Linear,)):
        modules, covered = covered_by(model, types, include_root=False)
        return [name for name, module in modules.items()
                if name and type(module) in DYNAMIC_SUPPORTED and covered(name)]

    return Case(check=lesson05.check_dynamic_targets, reference=reference,
                wrong={"leaf_type_only": leaf_type_only,
                       "isinstance_instead_of_exact_type": isinstance_instead_of_exact_type,
                       "ignores_dynamic_mapping": ignores_dynamic_mapping,
                       "root_not_a_container": root_not_a_container})


@case("05", "predict_dynamic_bytes", mistakes=("every_weight_one_byte", "biases_int8_too",
                                               "dot_weight_keys_only", "quarter_of_everything"))
def _predict_dynamic_bytes() -> Case:
    reference = solution("05", "predict_dynamic_bytes", nn=nn, dynamic=dynamic)

    def every_weight_one_byte(model, types=(nn.Linear,)):
        # Ignores which modules are replaced: the Conv2d and attention weights shrink too.
        return sum(t.numel() * (1 if k.rpartition(".")[2].startswith("weight") else t.element_size())
                   for k, t in model.state_dict().items())

    def biases_int8_too(model, types=(nn.Linear,)):
        targets = set(dynamic.dynamic_targets(model, types))
        return sum(t.numel() * (1 if k.rpartition(".")[0] in targets else t.element_size())
                   for k, t in model.state_dict().items())

    def dot_weight_keys_only(model, types=(nn.Linear,)):
        # Misses the LSTM's weight_ih_l0 / weight_hh_l0.
        targets = set(dynamic.dynamic_targets(model, types))
        return sum(t.numel() * (1 if k.rpartition(".")[0] in targets and k.endswith(".weight")
                                else t.element_size())
                   for k, t in model.state_dict().items())

    def quarter_of_everything(model, types=(nn.Linear,)):
        return sum(t.numel() * t.element_size() for t in model.state_dict().values()) // 4

    return Case(check=lesson05.check_predict_dynamic_bytes, reference=reference,
                wrong={"every_weight_one_byte": every_weight_one_byte,
                       "biases_int8_too": biases_int8_too,
                       "dot_weight_keys_only": dot_weight_keys_only,
                       "quarter_of_everything": quarter_of_everything})


@case("05", "quantize_and_measure", mistakes=("quantizes_in_place", "linear_only_ignores_types",
                                              "ignores_threads_argument", "error_against_itself"))
def _quantize_and_measure() -> Case:
    reference = solution("05", "quantize_and_measure", nn=nn, torch=torch, measure=measure)

    def make(inplace=False, types_override=None, fixed_threads=None, self_error=False):
        def answer(model, example, types=(nn.Linear,), threads=1, repeats=20, max_seconds=None):
            chosen = set(types_override or types)
            size_fp32 = measure.torch_size_bytes(model)
            with torch.inference_mode():
                reference_out = model(example)
            quantized = torch.ao.quantization.quantize_dynamic(model, chosen, dtype=torch.qint8,
                                                               inplace=inplace)
            used = fixed_threads or threads
            with torch.inference_mode():
                error = 0.0 if self_error else float((reference_out - quantized(example)).abs().max())
                t_fp32 = measure.latency(lambda: model(example), threads=used, repeats=repeats,
                                         max_seconds=max_seconds)
                t_int8 = measure.latency(lambda: quantized(example), threads=used, repeats=repeats,
                                         max_seconds=max_seconds)
            return {"quantized": quantized, "size_fp32": size_fp32,
                    "size_int8": measure.torch_size_bytes(quantized), "timing_fp32": t_fp32,
                    "timing_int8": t_int8, "max_abs_error": error}
        return answer

    return Case(check=lesson05.check_quantize_and_measure, reference=reference,
                wrong={"quantizes_in_place": make(inplace=True),
                       "linear_only_ignores_types": make(types_override={nn.Linear}),
                       "ignores_threads_argument": make(fixed_threads=1),
                       "error_against_itself": make(self_error=True)})


@case("05", "cosine_agreement", mistakes=("dot_product_without_lengths", "one_cosine_for_whole_matrix",
                                          "cosine_per_column", "mean_and_max"))
def _cosine_agreement() -> Case:
    reference = solution("05", "cosine_agreement", torch=torch)

    def dot_product_without_lengths(a, b):
        dots = (a * b).sum(dim=1)
        return float(dots.mean()), float(dots.min())

    def one_cosine_for_whole_matrix(a, b):
        value = float((a * b).sum() / (a.norm() * b.norm()))
        return value, value

    def cosine_per_column(a, b):
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0)
        return float(cos.mean()), float(cos.min())

    def mean_and_max(a, b):
        cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
        return float(cos.mean()), float(cos.max())

    return Case(check=lesson05.check_cosine_agreement, reference=reference,
                wrong={"dot_product_without_lengths": dot_product_without_lengths,
                       "one_cosine_for_whole_matrix": one_cosine_for_whole_matrix,
                       "cosine_per_column": cosine_per_column, "mean_and_max": mean_and_max})


@case("05", "per_token_int8_linear",
      mistakes=("per_tensor_activation_scale", "truncation_instead_of_rounding",
                "round_half_away_from_zero", "no_clamp_before_int8", "scale_from_max_not_absmax",
                "scale_divisor_127", "no_zero_token_guard_in_float_path",
                "weight_only_float_activation"))
def _per_token_int8_linear() -> Case:
    reference = solution("05", "per_token_int8_linear", torch=torch, MIN_SCALE=tdyn.MIN_SCALE)

    def make(granularity="token", rounding=torch.round, clamp=True, peak="absmax", guard=True,
             quantize_x=True, divisor=127.5, float_path=False):
        def answer(x, weight_q, weight_scale, bias=None):
            w = weight_q.to(torch.float32) * weight_scale.reshape(-1, 1)
            if not quantize_x:
                return x @ w.T + bias
            if granularity == "tensor":
                top = x.abs().max()
            elif peak == "absmax":
                top = x.abs().amax(dim=1, keepdim=True)
            else:
                top = x.amax(dim=1, keepdim=True)
            scale = top / divisor
            if guard:
                scale = scale.clamp(min=tdyn.MIN_SCALE)
            q = rounding(x / scale)
            if float_path:  # quantize-dequantize, then a float product: 0 / 0 stays NaN
                return (q.clamp(-128, 127) * scale) @ w.T + bias
            q = q.clamp(-128, 127).to(torch.int8) if clamp else q.to(torch.int32).to(torch.int8)
            acc = q.to(torch.int32) @ weight_q.to(torch.int32).T
            return acc.to(torch.float32) * scale * weight_scale.reshape(1, -1) + bias
        return answer

    def half_away(v):
        return torch.sign(v) * torch.floor(v.abs() + 0.5)

    return Case(check=lesson05.check_per_token_int8_linear, reference=reference,
                wrong={"per_tensor_activation_scale": make(granularity="tensor"),
                       "truncation_instead_of_rounding": make(rounding=torch.trunc),
                       "round_half_away_from_zero": make(rounding=half_away),
                       "no_clamp_before_int8": make(clamp=False),
                       "scale_from_max_not_absmax": make(peak="max"),
                       "scale_divisor_127": make(divisor=127.0),
                       "no_zero_token_guard_in_float_path": make(guard=False, float_path=True),
                       "weight_only_float_activation": make(quantize_x=False)})
