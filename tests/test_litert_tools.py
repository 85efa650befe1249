"""helpers.litert_tools: the flatbuffer tables, what stayed float, AEQ recipes, CompiledModel."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import litert_tools, tflite


@pytest.fixture(scope="module")
def files():
    """A tiny conv + ELU + dense Keras model and its conversions (one conversion each)."""
    tflite.import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(4, 3, activation="elu"),
                              keras.layers.Flatten(), keras.layers.Dense(40, activation="relu"),
                              keras.layers.Dense(3)])
    calib = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    converted = {mode: tflite.convert_keras(model, mode, calib, samples=16)
                 for mode in ("fp32", "dynamic", "int8-fallback", "float16")}
    return {"calib": calib, **converted}


def test_tensor_table_reads_what_the_file_stores(files) -> None:
    rows = litert_tools.tensor_table(files["dynamic"])
    stored = {r["name"]: r for r in rows if r["stored"]}
    dense = [r for r in stored.values() if r["dtype"] == "int8"]
    assert len(dense) == 1 and dense[0]["shape"] == (40, 144)
    assert len(dense[0]["scales"]) == 40 and len(dense[0]["zero_points"]) == 40
    assert all(not r["stored"] for r in rows if r["dtype"] == "float32" and len(r["shape"]) == 4
               and r["shape"][0] == 1)  # activations of batch 1 are never stored


def test_tensor_table_refuses_what_is_not_a_tflite_file() -> None:
    with pytest.raises(ValueError, match="TFL3"):
        litert_tools.tensor_table(b"not a model at all")
    with pytest.raises(TypeError, match="bytes"):
        litert_tools.tensor_table("model.tflite")


def test_op_kinds_follow_the_dtypes(files) -> None:
    kinds = {mode: litert_tools.summarize_kinds(litert_tools.op_table(files[mode]))
             for mode in ("fp32", "dynamic", "int8-fallback")}
    assert "integer" not in kinds["fp32"] and "hybrid" not in kinds["fp32"]
    assert kinds["dynamic"].get("hybrid", 0) >= 1 and "boundary" not in kinds["dynamic"]
    assert kinds["int8-fallback"]["boundary"] >= 2 and kinds["int8-fallback"]["integer"] >= 2


def test_stayed_float_reads_the_reason_from_the_graph(files) -> None:
    fallback = litert_tools.stayed_float(files["int8-fallback"])
    assert [r["op"] for r in fallback] == ["ELU"]
    assert "no integer kernel for ELU" in fallback[0]["why"]
    dynamic = {r["op"]: r["why"] for r in litert_tools.stayed_float(files["dynamic"])}
    assert "fewer than the 1,024" in dynamic["CONV_2D"]
    float16 = {r["op"]: r["why"] for r in litert_tools.stayed_float(files["float16"])}
    assert "float16 weights are dequantized" in float16["FULLY_CONNECTED"]


def test_aeq_recipes_and_their_errors(files) -> None:
    with pytest.raises(ValueError, match="unknown recipe"):
        litert_tools.aeq_quantize(files["fp32"], "static_wi3_ai3")
    with pytest.raises(ValueError, match="needs calib_images"):
        litert_tools.aeq_quantize(files["fp32"], "static_wi8_ai8")
    with pytest.raises(ValueError, match="ranges must be"):
        litert_tools.aeq_quantize(files["fp32"], "dynamic_wi8_afp32", ranges="median")
    int4 = litert_tools.aeq_quantize(files["fp32"], "weight_only_wi4_afp32")
    weights = [r for r in litert_tools.tensor_table(int4) if r["dtype"] == "int4"]
    assert weights and all(r["stored"] for r in weights)
    assert len(int4) < len(litert_tools.aeq_quantize(files["fp32"], "weight_only_wi8_afp32"))


def test_aeq_keep_float_and_min_max_ranges(files) -> None:
    dense = next(r["output_names"][0] for r in litert_tools.op_table(files["fp32"])
                 if r["op"] == "FULLY_CONNECTED")
    kept = litert_tools.aeq_quantize(files["fp32"], "static_wi8_ai8", files["calib"], 16,
                                     keep_float=[dense])
    floats = {r["op"] for r in litert_tools.stayed_float(kept)}
    assert "FULLY_CONNECTED" in floats

    def widest(content):
        return max(float(r["scales"][0]) for r in litert_tools.tensor_table(content)
                   if not r["stored"] and r["dtype"] == "int8" and len(r["scales"]) == 1)

    averaged = litert_tools.aeq_quantize(files["fp32"], "static_wi8_ai8", files["calib"], 16)
    extreme = litert_tools.aeq_quantize(files["fp32"], "static_wi8_ai8", files["calib"], 16,
                                        ranges="min_max")
    assert widest(extreme) >= widest(averaged)


def test_size_from_tensor_table_and_bytes_by_part(files) -> None:
    for mode in ("fp32", "int8-fallback"):
        content = files[mode]
        parts = litert_tools.file_bytes_by_part(content)
        assert sum(parts.values()) == len(content) and parts["overhead"] > 0
        predicted = litert_tools.size_from_tensor_table(litert_tools.tensor_table(content))
        assert 0.5 * len(content) < predicted < len(content)  # tiny file: overhead dominates


def test_run_compiled_model_matches_the_interpreter(files) -> None:
    x = np.random.default_rng(1).random((1, 8, 8, 1), dtype=np.float32)
    got = litert_tools.run_compiled_model(files["fp32"], x)
    np.testing.assert_allclose(got, tflite.LiteModel(files["fp32"]).predict(x), atol=1e-5)
    with pytest.raises(ValueError, match="model's own shape"):
        litert_tools.run_compiled_model(files["fp32"], np.zeros((2, 8, 8, 1), np.float32))
