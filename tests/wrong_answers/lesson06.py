"""Wrong answers for the exercises of lesson 06; see harness.py."""

import torch
from harness import Case, case, solution
from torch import nn
from torch.ao import quantization as tq
from torch.ao.nn.quantized import FloatFunctional

from helpers import env
from helpers.exercises import lesson06

# Exercises whose checks still live inline in the notebook. May only shrink.
PENDING: set[str] = set()

ENGINE = env.default_engine()


@case("06", "dequantize_one", mistakes=("ignores_zero_point", "adds_zero_point",
                                        "first_channel_qparams_for_every_row"))
def _dequantize_one() -> Case:
    reference = solution("06", "dequantize_one", torch=torch)

    def qparams(weight, row, first_only=False):
        if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            channel = 0 if first_only else row
            return (float(weight.q_per_channel_scales()[channel]),
                    int(weight.q_per_channel_zero_points()[channel]))
        return weight.q_scale(), weight.q_zero_point()

    def ignores_zero_point(qlinear, row, col):
        weight = qlinear.weight()
        scale, _ = qparams(weight, row)
        return int(weight.int_repr()[row, col]) * scale

    def adds_zero_point(qlinear, row, col):
        weight = qlinear.weight()
        scale, zero_point = qparams(weight, row)
        return (int(weight.int_repr()[row, col]) + zero_point) * scale

    def first_channel_qparams_for_every_row(qlinear, row, col):
        weight = qlinear.weight()
        scale, zero_point = qparams(weight, row, first_only=True)
        return (int(weight.int_repr()[row, col]) - zero_point) * scale

    return Case(check=lesson06.check_dequantize_one, reference=reference,
                wrong={"ignores_zero_point": ignores_zero_point,
                       "adds_zero_point": adds_zero_point,
                       "first_channel_qparams_for_every_row": first_channel_qparams_for_every_row})


@case("06", "fuse_tiny", mistakes=("conv_bn_pairs_without_relu", "leaves_conv3_bn3_unfused",
                                   "qat_fusion_for_inference"))
def _fuse_tiny() -> Case:
    reference = solution("06", "fuse_tiny", tq=tq, nn=nn)

    def conv_bn_pairs_without_relu(model):
        return tq.fuse_modules(model, [["conv1", "bn1"], ["conv2", "bn2"], ["conv3", "bn3"]])

    def leaves_conv3_bn3_unfused(model):
        return tq.fuse_modules(model, [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]])

    def qat_fusion_for_inference(model):
        groups = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"], ["conv3", "bn3"]]
        return tq.fuse_modules_qat(model, groups)

    return Case(check=lesson06.check_fuse_tiny, reference=reference,
                wrong={"conv_bn_pairs_without_relu": conv_bn_pairs_without_relu,
                       "leaves_conv3_bn3_unfused": leaves_conv3_bn3_unfused,
                       "qat_fusion_for_inference": qat_fusion_for_inference})


class _Wrapped(nn.Module):
    """SkipNet with stubs; how the adds are done is left to each wrong answer."""

    def __init__(self, net, dequant=True):
        super().__init__()
        self.quant, self.net = tq.QuantStub(), net
        self.dequant = tq.DeQuantStub() if dequant else nn.Identity()

    def head(self, x):
        return self.dequant(self.net.fc(torch.flatten(self.net.pool(x), 1)))


@case("06", "add_stubs", mistakes=("stubs_only_plain_add_kept", "one_floatfunctional_for_both_adds",
                                   "no_dequant_stub", "add_without_relu"))
def _add_stubs() -> Case:
    reference = solution("06", "add_stubs", tq=tq, nn=nn, torch=torch)

    def stubs_only_plain_add_kept(model):
        return tq.QuantWrapper(model)

    class SharedSkip(_Wrapped):
        def __init__(self, net):
            super().__init__(net)
            self.skip = FloatFunctional()

        def forward(self, x):
            x = self.net.stem(self.quant(x))
            x = self.skip.add_relu(self.net.block_a(x), x)
            return self.head(self.skip.add_relu(self.net.block_b(x), x))

    class NoDequant(_Wrapped):
        def __init__(self, net):
            super().__init__(net, dequant=False)
            self.skip_a, self.skip_b = FloatFunctional(), FloatFunctional()

        def forward(self, x):
            x = self.net.stem(self.quant(x))
            x = self.skip_a.add_relu(self.net.block_a(x), x)
            return self.head(self.skip_b.add_relu(self.net.block_b(x), x))

    class AddWithoutRelu(_Wrapped):
        def __init__(self, net):
            super().__init__(net)
            self.skip_a, self.skip_b = FloatFunctional(), FloatFunctional()

        def forward(self, x):
            x = self.net.stem(self.quant(x))
            x = self.skip_a.add(self.net.block_a(x), x)
            return self.head(self.skip_b.add(self.net.block_b(x), x))

    return Case(check=lesson06.check_add_stubs, reference=reference, context={"engine": ENGINE},
                wrong={"stubs_only_plain_add_kept": stubs_only_plain_add_kept,
                       "one_floatfunctional_for_both_adds": SharedSkip,
                       "no_dequant_stub": NoDequant,
                       "add_without_relu": AddWithoutRelu})


@case("06", "calibrate", mistakes=("forgets_eval_mode", "ignores_max_batches",
                                   "counts_batches_not_images", "one_batch_too_many"))
def _calibrate() -> Case:
    reference = solution("06", "calibrate", torch=torch, nn=nn)

    def run(prepared, loader, stop, count=lambda x: len(x), eval_mode=True):
        if eval_mode:
            prepared.eval()
        seen = 0
        with torch.inference_mode():
            for index, (x, _) in enumerate(loader):
                if stop is not None and index >= stop:
                    break
                prepared(x)
                seen += count(x)
        return seen

    def forgets_eval_mode(prepared, loader, max_batches):
        return run(prepared, loader, max_batches, eval_mode=False)

    def ignores_max_batches(prepared, loader, max_batches):
        return run(prepared, loader, None)

    def counts_batches_not_images(prepared, loader, max_batches):
        return run(prepared, loader, max_batches, count=lambda x: 1)

    def one_batch_too_many(prepared, loader, max_batches):
        return run(prepared, loader, max_batches + 1)

    return Case(check=lesson06.check_calibrate, reference=reference, context={"engine": ENGINE},
                wrong={"forgets_eval_mode": forgets_eval_mode,
                       "ignores_max_batches": ignores_max_batches,
                       "counts_batches_not_images": counts_batches_not_images,
                       "one_batch_too_many": one_batch_too_many})
