"""helpers.litert_torch_convert: import order, caching, and a real fp32 + int8 conversion.

The conversion runs in a fresh Python process: litert-torch must be imported before
TensorFlow (tensorflow/tensorflow#124205), and other tests in this process import TensorFlow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch

from helpers import litert_torch_convert


def test_import_refuses_to_follow_tensorflow(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    with pytest.raises(ImportError, match="124205"):
        litert_torch_convert.import_litert_torch()


def test_weights_digest_follows_the_weights() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    first = litert_torch_convert.weights_digest(model)
    assert first == litert_torch_convert.weights_digest(model) and len(first) == 16
    with torch.no_grad():
        model.bias[0] += 1
    assert litert_torch_convert.weights_digest(model) != first


def test_cached_builds_once_and_refreshes(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    model = torch.nn.Linear(2, 2)
    calls = []

    def build() -> bytes:
        calls.append(1)
        return b"TFL3 content"

    content, seconds = litert_torch_convert.cached(model, "fp32", build)
    assert content == b"TFL3 content" and seconds is not None
    assert litert_torch_convert.cached(model, "fp32", build) == (b"TFL3 content", None)
    litert_torch_convert.cached(model, "fp32", build, refresh=True)
    assert len(calls) == 2 and len(list(tmp_path.glob("litert-torch-*.tflite"))) == 1


def test_torch_logits_in_batches_equal_one_call() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3).eval()
    x = torch.randn(7, 5)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(litert_torch_convert.torch_logits(model, x, batch_size=3),
                               expected, rtol=1e-6)


SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import torch
    from helpers import litert_torch_convert as ltc
    ltc.import_litert_torch()
    from helpers import litert_tools, tflite

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 3)).eval()
    x = torch.rand(64, 1, 8, 8)
    fp32 = tflite.LiteModel(ltc.convert_fp32(model, x[:1]))
    quantized, quantizer = ltc.quantize_pt2e(model, x, x[:1])
    int8_bytes = ltc.convert_int8(quantized, quantizer, x[:1])
    int8 = tflite.LiteModel(int8_bytes)
    with torch.no_grad():
        float_out, pt2e_out = model(x).numpy(), quantized(x).numpy()
    step = int8.output_detail["quantization"][0]
    try:
        ltc.predict_nchw(fp32, np.zeros((2, 8, 8, 1), np.float32))
        shape_error = None
    except ValueError as err:
        shape_error = str(err)
    print(json.dumps({
        "fp32_diff": float(np.abs(ltc.predict_nchw(fp32, x.numpy()) - float_out).max()),
        "int8_steps": float(np.abs(ltc.predict_nchw(int8, x.numpy()) - pt2e_out).max() / step),
        "int8_kinds": sorted(litert_tools.summarize_kinds(litert_tools.op_table(int8_bytes))),
        "input_dtype": str(int8.input_dtype), "shape_error": shape_error}))
""")


def test_a_pytorch_model_converts_in_fp32_and_int8() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["fp32_diff"] < 1e-4
    assert result["int8_steps"] <= 1.01
    assert result["int8_kinds"] == ["integer"] and result["input_dtype"] == "int8"
    assert "NCHW" in result["shape_error"]
