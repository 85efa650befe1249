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


def test_start_fresh_runs_in_the_background():
    fresh = keras_qat.start_fresh("print('in the background')")
    assert fresh.result(timeout=60).stdout.strip() == "in the background"


def test_a_failed_keras_qat_child_reports_its_error(tmp_path):
    from helpers import twin_qat

    log = tmp_path / "x.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit('no legacy keras')"],
                                   stdout=out, stderr=subprocess.STDOUT)
    with pytest.raises(RuntimeError, match="no legacy keras"):
        twin_qat.Pending(tmp_path / "x.tflite", process).wait(timeout=60)


def test_the_numpy_fake_quant_matches_tensorflow():
    # The lesson-12 check compares with this NumPy transcription when TensorFlow is not loaded;
    # its tolerance (1e-5) is far below a grid step, so a rounding difference would show.
    out = keras_qat.run_fresh("""
import numpy as np, tensorflow as tf
from helpers.exercises import lesson12
x = lesson12.fake_quant_inputs()
worst = 0.0
for x_min, x_max, bits in lesson12.FAKE_QUANT_RANGES:
    ours = lesson12.fake_quant_reference(x, x_min, x_max, bits)
    theirs = tf.quantization.fake_quant_with_min_max_args(x, min=x_min, max=x_max, num_bits=bits)
    worst = max(worst, float(np.abs(ours - theirs.numpy()).max()))
print("worst", worst)
""")
    worst = float(out.split()[-1])
    assert worst < 1e-6  # float rounding only: a grid step is at least 1/64 here


def test_the_twin_quantizes_with_tfmot_in_a_legacy_child(tmp_path, monkeypatch):
    # The capstone's Keras QAT path end to end, on a tiny network: tf_keras twin, quantize_model,
    # fine-tuning, an integer-only file with uint8 I/O.
    from helpers import capstone, decision, training, twin_qat

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    recipe_args = {"width": 4, "blocks": 1, "epochs": 1}
    net = training.pretrained("ds_cnn", **recipe_args)
    recipe = twin_qat.Recipe(pretrained=recipe_args, weights=capstone.weights_digest(net),
                             images=128)
    job = twin_qat.start(recipe)
    assert not job.reused
    content = job.wait(timeout=900)
    assert decision.tflite_integer_only(content)
    assert twin_qat.start(recipe).reused


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
