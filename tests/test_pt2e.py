"""Tests for helpers.pt2e (lesson 07): export, prepare, calibrate, convert, compile, save, load."""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pytest
import torch

from helpers import data, env, models, pt2e

pytestmark = pytest.mark.usefixtures("quiet_engine")


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.SmallCNN(width=8, eager=False).eval()


def images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def quantized() -> pt2e.Quantized:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pt2e.quantize(tiny(), images(1), images(40), batches=None, batch_size=16,
                             quantizer=pt2e.x86_quantizer(reduce_range=False))


def test_export_traces_a_dynamic_batch() -> None:
    exported = pt2e.export(tiny(), images(1))
    module = exported.module()
    assert module(images(1)).shape == (1, 10)
    assert module(images(7)).shape == (7, 10)
    assert "batch_norm" in " ".join(pt2e.op_counts(module))


def test_export_rejects_bad_inputs() -> None:
    with pytest.raises(TypeError, match="example_inputs must be"):
        pt2e.export(tiny(), [images(1)])
    with pytest.raises(TypeError, match="nn.Module"):
        pt2e.export(lambda x: x, images(1))


def test_has_vnni_reads_the_features() -> None:
    assert pt2e.has_vnni({"avx512_vnni": True}) is True
    assert pt2e.has_vnni({"avx_vnni": False, "amx_int8": True}) is True
    assert pt2e.has_vnni({"avx2": True}) is False


def test_x86_quantizer_reduce_range_follows_the_cpu(monkeypatch) -> None:
    monkeypatch.setattr(env, "cpu_features", lambda: {"avx2": True})
    assert pt2e.x86_quantizer().global_config.input_activation.quant_max == 127
    monkeypatch.setattr(env, "cpu_features", lambda: {"avx512_vnni": True})
    assert pt2e.x86_quantizer().global_config.input_activation.quant_max == 255
    assert pt2e.x86_quantizer(reduce_range=True).global_config.input_activation.quant_max == 127
    assert pt2e.x86_quantizer(keep_float="fc").module_name_qconfig == {"fc": None}


def test_quantize_folds_batch_norm_and_stores_int8_weights(quantized) -> None:
    ops = pt2e.op_counts(quantized.model)
    assert not any("batch_norm" in op for op in ops)
    assert ops["quantize_per_tensor"] > 0 and ops["dequantize_per_channel"] == 5
    int8 = [r for r in pt2e.stored_tensors(quantized.model) if r["dtype"] == "int8"]
    assert len(int8) == 5  # four convolutions and the linear layer
    assert set(quantized.seconds) == {"export", "prepare", "calibrate", "convert"}
    assert quantized.calib_images == 40


def test_converted_graph_follows_the_float_model(quantized) -> None:
    x = images(32, seed=3)
    with torch.inference_mode():
        reference, out = tiny()(x), quantized.model(x)
    assert pt2e.measure.torch_size_bytes(quantized.model) > 0
    from helpers import quant
    assert quant.sqnr_db(reference, out) > 20


def test_convert_drops_the_unused_float_weights(quantized) -> None:
    floats = [n for n, p in quantized.model.named_parameters() if p.ndim > 1]
    assert floats == []  # the conv and linear weights live on as int8 constants only


def test_calibrate_counts_images_and_refuses_the_test_split() -> None:
    prepared = pt2e.prepare(tiny(), images(1))
    assert pt2e.calibrate(prepared, images(10), batches=2, batch_size=4) == 8
    assert pt2e.calibrate(prepared, images(10), batch_size=4) == 10
    split = data.Split(np.zeros((6, 28, 28), np.float32), np.zeros(6, np.int64), "calib")
    assert pt2e.calibrate(prepared, split) == 6
    with pytest.raises(data.SelectionOnTestError, match="mnist.val"):
        pt2e.calibrate(prepared, data.Split(split.x, split.y, "test"))
    with pytest.raises(ValueError, match="non-empty"):
        pt2e.calibrate(prepared, torch.empty(0, 1, 28, 28))
    with pytest.raises(ValueError, match="batches must be"):
        pt2e.calibrate(prepared, images(4), batches=0)


def test_convert_refuses_a_model_without_observers() -> None:
    with pytest.raises(ValueError, match="no observers"):
        pt2e.convert(pt2e.export(tiny(), images(1)).module())


def test_prepare_needs_example_inputs_for_a_module() -> None:
    with pytest.raises(ValueError, match="example_inputs"):
        pt2e.prepare(tiny())


def test_save_and_load_reproduce_the_graph(quantized, tmp_path) -> None:
    path = tmp_path / "int8.pt2"
    n_bytes = pt2e.save(quantized.model, path, images(1))
    assert n_bytes == path.stat().st_size
    assert n_bytes < 400_000  # sample inputs are cloned, not the tensor they were sliced from
    assert pt2e.pickled_entries(path) == []
    loaded = pt2e.load(path)
    x = images(9, seed=4)
    with torch.inference_mode():
        assert torch.equal(loaded(x), quantized.model(x))


def test_load_refuses_pickled_entries_and_missing_files(quantized, tmp_path) -> None:
    path = tmp_path / "int8.pt2"
    pt2e.save(quantized.model, path, images(1))
    tampered = tmp_path / "tampered.pt2"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            payload = source.read(item.filename)
            if item.filename.endswith("model_weights_config.json"):
                config = json.loads(payload)
                first = next(iter(config["config"]))
                config["config"][first]["use_pickle"] = True
                payload = json.dumps(config).encode()
            target.writestr(item, payload)
    assert len(pt2e.pickled_entries(tampered)) == 1
    with pytest.raises(ValueError, match="pickled entries"):
        pt2e.load(tampered)
    with pytest.raises(FileNotFoundError, match="pt2e.save"):
        pt2e.load(tmp_path / "absent.pt2")


def test_kernel_calls_reads_the_call_function_only() -> None:
    code = ("cpp_fused_quantize_per_tensor_0 = async_compile.cpp_pybinding(...)\n"
            "class Runner:\n"
            "    def call(self, args):\n"
            "        cpp_fused_quantize_per_tensor_0(arg0, buf0)\n"
            "        buf1 = torch.ops.onednn.qconv_pointwise.tensor(buf0, 1.0)\n"
            "        buf2 = torch.ops.quantized.max_pool2d.default(buf1, [2, 2])\n"
            "        buf3 = extern_kernels.addmm(a, b, c)\n"
            "        return (buf3,)\n"
            "def benchmark_compiled_module():\n"
            "    torch.ops.onednn.qconv_pointwise.tensor(x)\n")
    assert pt2e.kernel_calls(code) == ["cpp_fused_quantize_per_tensor", "onednn.qconv_pointwise",
                                       "quantized.max_pool2d", "extern_kernels.addmm"]


def test_compile_lowers_the_pairs_to_int8_kernels_and_time_flow_reports(quantized) -> None:
    flow = pt2e.time_flow(tiny(), quantized.model, images(1), repeats=3, compile_fp32=False)
    calls = flow.kernels["int8 compiled"]
    assert any(call.startswith("onednn.qconv") for call in calls)
    assert flow.compile_s["int8 compiled"] > 0
    assert set(flow.timings) == {"fp32 eager", "fp32 folded", "int8 compiled"}
    assert set(flow.speedups()) == {"fp32 eager", "fp32 folded"}
    with pytest.raises(KeyError, match="no timing"):
        flow.speedups("fp32 compiled")
    predicted = pt2e.predict(flow.compiled["int8 compiled"], images(4), batch_size=2)
    assert predicted.shape == (4,)
    with pytest.raises(ValueError, match="do not split"):
        pt2e.predict(flow.compiled["int8 compiled"], images(5), batch_size=2)


def test_fold_batch_norm_keeps_the_function() -> None:
    model, x = tiny(), images(3)
    folded = pt2e.fold_batch_norm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)


def test_choose_model_reads_the_interval_and_refuses_test() -> None:
    from helpers.exercises import lesson07

    split, predict, latency = lesson07._scenario("val")
    assert pt2e.choose_model(split, predict, latency, 0.3) == "close"
    risky = {k: predict[k] for k in ("fp32", "fast", "noisy")}
    assert pt2e.choose_model(split, risky, latency, 0.3) == "fp32"
    assert pt2e.choose_model(split, predict, {**latency, "fp32": 1.8}, 0.3) == "fp32"  # float is faster
    with pytest.raises(data.SelectionOnTestError):
        pt2e.choose_model(data.Split(split.x, split.y, "test"), predict, latency)
    with pytest.raises(KeyError, match="fp32"):
        pt2e.choose_model(split, {"fast": predict["fast"]}, latency)
