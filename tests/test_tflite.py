"""helpers.tflite (and helpers.plot.tflite): conversion modes, LiteModel feeding, bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest

from helpers import tflite

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


@pytest.fixture(scope="module")
def tiny():
    """A 4-3 dense Keras model and its float and int8-I/O TFLite conversions."""
    tf = tflite.import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3)])
    calib = np.random.default_rng(0).random((32, 4), dtype=np.float32)
    return {
        "tf": tf,
        "model": model,
        "calib": calib,
        "fp32": tflite.convert_keras(model, "fp32"),
        "int8": tflite.convert_keras(model, "int8-int8io", calib, samples=32),
    }


def test_representative_dataset_yields_batch_one_float32() -> None:
    images = np.arange(24, dtype=np.float64).reshape(4, 2, 3)
    items = list(tflite.representative_dataset(images, samples=3)())
    assert len(items) == 3
    assert all(len(item) == 1 and item[0].shape == (1, 2, 3) for item in items)
    assert items[2][0].dtype == np.float32
    np.testing.assert_array_equal(items[2][0][0], images[2])


def test_representative_dataset_rejects_empty_and_bad_samples() -> None:
    with pytest.raises(ValueError, match="empty"):
        tflite.representative_dataset(np.zeros((0, 28, 28)))
    with pytest.raises(ValueError, match="samples must be >= 1"):
        tflite.representative_dataset(np.zeros((2, 28, 28)), samples=0)


def test_quantize_and_dequantize_use_the_tensor_parameters() -> None:
    detail = {"name": "x", "dtype": np.int8, "quantization": (0.5, -10)}
    q = tflite.quantize_to(np.array([0.0, 1.0, 100.0, -100.0], dtype=np.float32), detail)
    np.testing.assert_array_equal(q, np.array([-10, -8, 127, -128], dtype=np.int8))
    np.testing.assert_allclose(tflite.dequantize_from(q, detail), [0.0, 1.0, 68.5, -59.0])
    floats = {"name": "f", "dtype": np.float32, "quantization": (0.0, 0)}
    assert tflite.quantize_to(np.array([0.25]), floats).dtype == np.float32


def test_quantize_to_refuses_a_missing_scale() -> None:
    with pytest.raises(ValueError, match="no quantization scale"):
        tflite.quantize_to(np.zeros(2), {"name": "x", "dtype": np.uint8, "quantization": (0.0, 0)})


def test_litemodel_missing_file_and_bad_threads(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no .tflite file"):
        tflite.LiteModel(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        tflite.LiteModel(b"", num_threads=0)


def test_convert_keras_rejects_unknown_mode_and_missing_calibration(tiny) -> None:
    with pytest.raises(ValueError, match="unknown mode 'int4'"):
        tflite.convert_keras(tiny["model"], "int4")
    with pytest.raises(ValueError, match="needs calib_images"):
        tflite.convert_keras(tiny["model"], "16x8")


def test_wrong_dtype_into_an_int8_model_is_a_clear_type_error(tiny) -> None:
    lite = tflite.LiteModel(tiny["int8"])
    assert lite.input_dtype == np.int8 and lite.output_dtype == np.int8
    with pytest.raises(TypeError, match="expects int8, got float32: quantize it first"):
        lite.invoke(tiny["calib"][:1])
    with pytest.raises(TypeError, match="predict\\(\\) takes float inputs"):
        lite.predict(np.zeros((1, 4), dtype=np.int8))
    with pytest.raises(ValueError, match="empty batch"):
        lite.predict(np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="does not match the model's"):
        lite.invoke(np.zeros((1, 5), dtype=np.int8))


def test_predict_matches_keras_for_float_and_int8(tiny) -> None:
    x = tiny["calib"][:8]
    expected = tiny["model"](x).numpy()
    np.testing.assert_allclose(tflite.LiteModel(tiny["fp32"]).predict(x), expected, atol=1e-5)
    int8_out = tflite.LiteModel(tiny["int8"], num_threads=2).predict(x, batch_size=3)
    assert int8_out.shape == (8, 3) and int8_out.dtype == np.float32
    np.testing.assert_allclose(int8_out, expected, atol=0.05)


def test_tensors_report_int8_weights_with_scales(tiny) -> None:
    lite = tflite.LiteModel(tiny["int8"])
    rows = lite.tensors()
    weights = [r for r in rows if r["is_constant"] and r["dtype"] == "int8"]
    assert len(weights) == 1 and weights[0]["shape"] == (3, 4)
    assert len(weights[0]["scales"]) == 3 and weights[0]["quantized_dimension"] == 0
    assert not any(r["is_constant"] for r in rows if r["index"] == lite.input_detail["index"])
    assert "FULLY_CONNECTED" in lite.ops()
    assert ("FULLY_CONNECTED", "int8") in lite.ops_with_weight_dtype()


def test_xnnpack_can_be_turned_off(tiny) -> None:
    assert tflite.LiteModel(tiny["fp32"]).delegate_partitions() == 1
    assert tflite.LiteModel(tiny["fp32"], xnnpack=False).delegate_partitions() == 0


def test_cached_conversion_builds_once(tmp_path, monkeypatch, tiny) -> None:
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    calls = []

    def build() -> bytes:
        calls.append(1)
        return tiny["fp32"]

    first = tflite.cached_conversion("tiny-fp32", build)
    second = tflite.cached_conversion("tiny-fp32", build)
    assert first == second == tiny["fp32"] and len(calls) == 1
    assert len(list(tmp_path.glob("tflite-*.tflite"))) == 1


def test_quiet_hides_output_written_to_the_file_descriptors(capfd) -> None:
    with tflite.quiet():
        os.write(1, b"converter chatter\n")
        os.write(2, b"C++ log line\n")
        print("python chatter")
    print("after")
    out, err = capfd.readouterr()
    assert out == "after\n" and err == ""


def test_outlier_channel_leaves_float_predictions_unchanged(tiny) -> None:
    from helpers import models

    cnn = models.build_keras_cnn(filters=4, seed=1)
    outlier = tflite.with_outlier_channel(cnn, gain=50.0)
    x = np.random.default_rng(1).random((3, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(outlier(x).numpy(), cnn(x).numpy(), atol=1e-4)
    conv = [layer for layer in outlier.layers if layer.__class__.__name__ == "Conv2D"][0]
    assert conv.get_weights()[0].shape == (3, 3, 1, 5)
    assert float(conv.get_weights()[0][..., -1].max()) == 50.0


def test_mobilenet_like_has_mobilenet_v2_size(tiny) -> None:
    model = tflite.build_mobilenet_like(resolution=32)
    assert model.count_params() == 3_487_816


def test_plot_helpers_make_figures() -> None:
    from helpers.measure import Timing
    from helpers.plot import tflite as tflite_plot

    rows = [{"shape": (3, 4), "dtype": "int8", "is_constant": True},
            {"shape": (3,), "dtype": "int32", "is_constant": True},
            {"shape": (1, 3), "dtype": "int8", "is_constant": False}]
    by_dtype = tflite_plot.tensor_bytes_by_dtype(rows)
    assert by_dtype == {"int8": 12, "int32": 12}
    timing = Timing(1.0, 0.1, 0.9, 1.2, 10, 1)
    figures = [
        tflite_plot.bytes_by_dtype({"a": (by_dtype, 100)}),
        tflite_plot.weight_and_activation_scales(np.array([0.1, 0.2]), {"act": 0.5}),
        tflite_plot.latency_by_kernels({"fp32": {"XNNPACK": timing}}),
        tflite_plot.activation_ranges(np.arange(10.0), {"int8": 0.5}),
    ]
    assert all(f.axes for f in figures)
    with pytest.raises(ValueError, match="at least one model"):
        tflite_plot.bytes_by_dtype({})


def test_layer_errors_figure_marks_rounding() -> None:
    from helpers.plot import tflite as tflite_plot

    rows = [{"op": "CONV_2D", "rmse/scale": 0.3}, {"op": "FULLY_CONNECTED", "rmse/scale": 0.5}]
    fig = tflite_plot.layer_errors(rows, rounding_only=0.2887)
    assert fig.axes[0].get_legend() is not None and len(fig.axes[0].patches) == 2
    with pytest.raises(ValueError, match="at least one layer"):
        tflite_plot.layer_errors([], rounding_only=0.2887)


def test_tensorflow_then_torch_compiler_stack_works_in_one_process():
    import subprocess
    import sys

    code = ("from helpers.tflite import import_tensorflow; import_tensorflow(); "
            "import torch._dynamo, torchao; print('both loaded')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "both loaded" in result.stdout, result.stderr[-2000:]
