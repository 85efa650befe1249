"""Wrong answers for the exercises of lesson 12 (Keras QAT); see harness.py.

This pytest process stays on Keras 3 and never imports TensorFlow for these cases:

* ``fake_quant`` is NumPy only;
* ``convert_integer_io``: a legacy-Keras child process fine-tunes a small QAT model once, runs
  the solution notebook's own exercise code on it and writes that file beside the files each
  mistake produces (cached in ``data/cache`` by the code and the package versions); the check
  reads flatbuffers with the LiteRT interpreter only;
* ``annotate_feature_extractor`` gets stand-in layers and a stand-in ``quantize_annotate_layer``
  (the check looks only at what the function returns; tests/test_keras_qat.py runs tfmot).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
from harness import Case, case, exercise_cells, exercise_name, solution

from helpers import data, keras_qat, paths
from helpers.exercises import lesson12

PENDING: set[str] = set()


@case("12", "fake_quant", mistakes=("round_half_to_even", "no_nudged_range", "truncation",
                                    "zero_point_not_clamped", "ignores_bits"))
def _fake_quant() -> Case:
    def make(rounding=lambda v: np.floor(v + 0.5), nudge=True, clamp_zero_point=True, fixed_bits=None):
        def fake_quant(x, x_min, x_max, bits=8):
            bits = fixed_bits or bits
            qmin, qmax = 0, 2**bits - 1
            scale = (x_max - x_min) / (qmax - qmin)
            zero_point = rounding(qmin - x_min / scale)
            if clamp_zero_point:
                zero_point = np.clip(zero_point, qmin, qmax)
            lo, hi = ((qmin - zero_point) * scale, (qmax - zero_point) * scale) if nudge else (x_min, x_max)
            return (rounding((np.clip(x, lo, hi) - lo) / scale) * scale + lo).astype(np.float32)
        return fake_quant

    return Case(check=lesson12.check_fake_quant, reference=solution("12", "fake_quant"),
                wrong={"round_half_to_even": make(rounding=np.round),
                       "no_nudged_range": make(nudge=False),
                       "truncation": make(rounding=np.floor),
                       "zero_point_not_clamped": make(clamp_zero_point=False),
                       "ignores_bits": make(fixed_bits=8)})


CHILD = """
import json, sys
import numpy as np
import tensorflow as tf
from helpers import data, env, keras_qat, tflite
env.seed_everything(0)
source, folder = sys.argv[1], sys.argv[2]
float_model = keras_qat.compile_model(keras_qat.build_legacy_cnn(seed=0))
model = keras_qat.compile_model(keras_qat.quantize(float_model))
keras_qat.fit(model, data.load_mnist().train.take(256), epochs=1, batch_size=64)
namespace = {"tf": tf, "np": np}
exec(source, namespace)
calib = data.keras_arrays(data.load_mnist().calib.take(100))[0]
files = {
    "solution": namespace["convert_integer_io"](model),
    "reference": keras_qat.convert_qat(model, io_type="uint8"),
    "float_io": keras_qat.convert_qat(model, io_type="float"),
    "int8_io": keras_qat.convert_qat(model, io_type="int8"),
    "post_training_of_the_float_model": tflite.convert_keras(float_model, "int8", calib),
}
for name, content in files.items():
    open(f"{folder}/{name}.tflite", "wb").write(content)
"""


def _qat_files() -> dict[str, bytes]:
    """The solution's file and the mistakes' files, from one legacy-Keras child, cached."""
    source = next("".join(c["source"]) for _, c in exercise_cells("12")
                  if exercise_name(c) == "convert_integer_io")
    versions = {p: importlib.metadata.version(p) for p in
                ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert")}
    key = hashlib.sha256(json.dumps([source, CHILD, versions]).encode()).hexdigest()[:12]
    folder = paths.cache_dir() / f"lesson12-convert-{key}"
    names = ("solution", "reference", "float_io", "int8_io", "post_training_of_the_float_model")
    if not all((folder / f"{n}.tflite").exists() for n in names):
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-c", CHILD, source, str(folder)], text=True,
                              capture_output=True, env=keras_qat.child_env(legacy=True), timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    return {n: (folder / f"{n}.tflite").read_bytes() for n in names}


@case("12", "convert_integer_io", mistakes=("float_io", "int8_io", "post_training_of_the_float_model"))
def _convert_integer_io() -> Case:
    files = _qat_files()

    def returning(name):
        return lambda qat_model: files[name]

    return Case(check=lesson12.check_convert_integer_io, reference=returning("solution"),
                wrong={name: returning(name) for name in
                       ("float_io", "int8_io", "post_training_of_the_float_model")},
                context={"qat_model": None, "reference": files["reference"],
                         "images": data.keras_arrays(data.load_mnist().test.take(100))[0]})


class _Layer:
    """A stand-in for a Keras layer: a class name, a config, from_config."""

    def __init__(self, **config) -> None:
        self.config = config

    def get_config(self) -> dict:
        return dict(self.config)

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


LAYERS = {name: type(name, (_Layer,), {}) for name in
          ("Reshape", "Conv2D", "MaxPooling2D", "Flatten", "Dense")}


class QuantizeAnnotate:
    """tfmot's annotation wrapper, as the check sees it: the class name and ``.layer``."""

    def __init__(self, layer) -> None:
        self.layer = layer


@case("12", "annotate_feature_extractor",
      mistakes=("annotates_every_layer", "forgets_the_reshape", "quantizes_the_classifier",
                "returns_a_new_layer"))
def _annotate() -> Case:
    tf_keras = SimpleNamespace(layers=SimpleNamespace(**LAYERS))
    tfmot = SimpleNamespace(quantization=SimpleNamespace(keras=SimpleNamespace(
        quantize_annotate_layer=QuantizeAnnotate)))
    model = SimpleNamespace(layers=[LAYERS[name](name=name.lower()) for name in LAYERS])

    def annotating(kinds):
        def annotate(layer):
            return QuantizeAnnotate(layer) if kinds is None or type(layer).__name__ in kinds else layer
        return annotate

    def returns_a_new_layer(layer):
        fresh = type(layer).from_config(layer.get_config())
        return QuantizeAnnotate(fresh) if type(layer).__name__ in ("Reshape", "Conv2D") else fresh

    return Case(check=lesson12.check_annotate_feature_extractor,
                reference=solution("12", "annotate_feature_extractor", tf_keras=tf_keras, tfmot=tfmot),
                wrong={"annotates_every_layer": annotating(None),
                       "forgets_the_reshape": annotating({"Conv2D"}),
                       "quantizes_the_classifier": annotating({"Reshape", "Conv2D", "Dense"}),
                       "returns_a_new_layer": returns_a_new_layer},
                context={"model": model})
