"""helpers.keras_qat: legacy-Keras checks in this process, tfmot itself in child processes.

tfmot needs TF_USE_LEGACY_KERAS=1 before TensorFlow is imported, for the whole process. The
pytest process must stay on Keras 3 (other tests and lessons use it), so everything that
imports TensorFlow here runs in a fresh ``python -c`` with the variable set.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from helpers import keras_qat


def run_legacy(code: str) -> str:
    """Run code in a fresh legacy-Keras process and return its stdout (fail with stderr)."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], text=True,
                          capture_output=True, env=keras_qat.child_env(legacy=True), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_importing_the_module_does_not_import_tensorflow():
    code = "import sys, helpers.keras_qat; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_require_legacy_keras_explains_the_switch(monkeypatch):
    monkeypatch.delenv(keras_qat.LEGACY_ENV, raising=False)
    with pytest.raises(RuntimeError, match="TF_USE_LEGACY_KERAS"):
        keras_qat.require_legacy_keras()
    with pytest.raises(RuntimeError, match="before anything imports tensorflow"):
        keras_qat.build_legacy_cnn()


def test_child_env_sets_or_removes_the_switch(monkeypatch):
    monkeypatch.setenv(keras_qat.LEGACY_ENV, "1")
    assert keras_qat.LEGACY_ENV not in keras_qat.child_env(legacy=False)
    monkeypatch.delenv(keras_qat.LEGACY_ENV)
    assert keras_qat.child_env(legacy=True)[keras_qat.LEGACY_ENV] == "1"


def test_convert_qat_rejects_an_unknown_io_type():
    with pytest.raises(ValueError, match="io_type must be 'float', 'uint8' or 'int8'"):
        keras_qat.convert_qat(object(), io_type="float16")


def test_run_fresh_returns_output_and_reports_the_last_error_line():
    assert keras_qat.run_fresh("print(6 * 7)").strip() == "42"
    with pytest.raises(RuntimeError, match="in a fresh process: ValueError: boom"):
        keras_qat.run_fresh("print('before'); raise ValueError('boom')")
    result = keras_qat.run_fresh("print('before'); raise ValueError('boom')", check=False)
    assert (result.stdout, result.error) == ("before\n", "ValueError: boom")
    with pytest.raises(RuntimeError, match="boom"):
        result.raise_error()


def test_export_wait_reports_a_failed_child(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit('no legacy keras')"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    export = keras_qat.Export(process, tmp_path / "missing.tflite")
    with pytest.raises(RuntimeError, match="no legacy keras"):
        export.wait(timeout=60)


def test_importing_tfmot_switches_its_process_to_legacy_keras():
    # Why child_env(legacy=False) removes the variable: tfmot sets it on import.
    code = ("import os; import tensorflow_model_optimization; "
            "print(os.environ.get('TF_USE_LEGACY_KERAS'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=keras_qat.child_env(legacy=False), timeout=600)
    assert done.stdout.strip() == "1", done.stderr[-2000:]


def test_quantize_annotate_and_convert_in_a_legacy_process():
    out = run_legacy("""
        import numpy as np
        from helpers import keras_qat, data, tflite
        model = keras_qat.compile_model(keras_qat.build_legacy_cnn(seed=0))
        print("flavour", keras_qat.keras_flavour().split()[0])
        print("full", keras_qat.quantized_layer_types(keras_qat.quantize(model)))
        partial = keras_qat.quantize_only(model, ("Reshape", "Conv2D"))
        print("partial", keras_qat.quantized_layer_types(partial))
        try:
            keras_qat.quantize_only(model, ("LSTM",))
        except ValueError as err:
            print("error", err)
        qat = keras_qat.compile_model(keras_qat.quantize(model))
        split = data.load_mnist().train.take(64)
        losses = keras_qat.fit(qat, split, epochs=1, batch_size=32)
        lite = tflite.LiteModel(keras_qat.convert_qat(qat, io_type="uint8"))
        print("io", lite.input_dtype, lite.output_dtype)
        print("int8 tensors", keras_qat.dtype_counts(lite).get("int8", 0) > 0, len(losses))
    """)
    assert "flavour tf_keras" in out
    assert "full ['Conv2D', 'Dense', 'Flatten', 'MaxPooling2D', 'Reshape']" in out
    assert "partial ['Conv2D', 'Reshape']" in out
    assert "error the model has no layers of type ['LSTM']" in out
    assert "io uint8 uint8" in out
    assert "int8 tensors True 1" in out
