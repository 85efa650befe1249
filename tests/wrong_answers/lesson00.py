"""Wrong answers for the exercises of lesson 00; see harness.py."""

from harness import Case, case, solution

from helpers.exercises import lesson00


@case("00", "model_bytes", mistakes=("every_tensor_at_bits", "rounded_once_for_the_whole_model",
                                     "parameters_only_forgets_buffers", "floor_instead_of_ceil"))
def _model_bytes() -> Case:
    def every_tensor_at_bits(model, bits):
        return sum((t.numel() * bits + 7) // 8 for t in model.state_dict().values())

    def rounded_once_for_the_whole_model(model, bits):
        total_bits = 0
        for t in model.state_dict().values():
            is_weight = t.is_floating_point() and t.dim() >= 2
            total_bits += t.numel() * (bits if is_weight else 8 * t.element_size())
        return (total_bits + 7) // 8

    def parameters_only_forgets_buffers(model, bits):
        return sum((p.numel() * bits + 7) // 8 if p.dim() >= 2 else p.numel() * p.element_size()
                   for p in model.parameters())

    def floor_instead_of_ceil(model, bits):
        return sum(t.numel() * bits // 8 if t.is_floating_point() and t.dim() >= 2
                   else t.numel() * t.element_size() for t in model.state_dict().values())

    wrong = {f.__name__: f for f in (every_tensor_at_bits, rounded_once_for_the_whole_model,
                                     parameters_only_forgets_buffers, floor_instead_of_ceil)}
    return Case(check=lesson00.check_model_bytes, reference=solution("00", "model_bytes"),
                wrong=wrong)
