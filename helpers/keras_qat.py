"""Quantization-aware training in Keras with tensorflow-model-optimization (tfmot); lesson 12.

tfmot 0.8 only understands legacy Keras 2 models (the ``tf_keras`` package). It rejects a
Keras 3 model with "`to_quantize` can only either be a keras Sequential or Functional model".
A process uses legacy Keras when ``TF_USE_LEGACY_KERAS=1`` is set *before* TensorFlow is first
imported, and then for the rest of its life: so lesson 12 sets it in its first cell, and the
capstone (a Keras 3 kernel) runs Keras QAT in a child process (:mod:`helpers.twin_qat`).

Nothing here imports TensorFlow at import time; every function that needs it checks first
that the process is on legacy Keras (:func:`require_legacy_keras`).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from helpers import data, models

LEGACY_ENV = "TF_USE_LEGACY_KERAS"


def require_legacy_keras() -> None:
    """Raise a clear error unless this process runs TensorFlow with legacy Keras; lesson 12."""
    if os.environ.get(LEGACY_ENV) != "1":
        raise RuntimeError(
            f"tfmot needs legacy Keras: set os.environ['{LEGACY_ENV}'] = '1' in the first cell, "
            "before anything imports tensorflow, then restart the kernel (or run the work in a "
            "child process with keras_qat.start_fresh)"
        )
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        if not tf.keras.__name__.startswith("tf_keras"):
            raise RuntimeError(
                f"{LEGACY_ENV}=1 was set after TensorFlow was imported, so tf.keras is still "
                "Keras 3; restart the kernel and set it first"
            )


def keras_flavour() -> str:
    """Which Keras ``tf.keras`` is in this process: "tf_keras 2.x" or "keras 3.x"; lesson 12."""
    import tensorflow as tf

    if tf.keras.__name__.startswith("tf_keras"):
        import tf_keras

        return f"tf_keras {tf_keras.__version__}"
    import keras

    return f"keras {keras.__version__}"


def build_legacy_cnn(filters: int = 12, seed: int = 0):
    """The course Keras CNN (models.build_keras_cnn) built with legacy ``tf_keras``; lesson 12."""
    require_legacy_keras()
    import tf_keras

    return models.build_keras_cnn(filters=filters, seed=seed, keras_module=tf_keras)


def legacy_pretrained(epochs: int = 5, filters: int = 12, seed: int = 0):
    """The trained course Keras CNN (lessons 09-11) copied into a ``tf_keras`` model; lesson 12.

    training.keras_pretrained() trains or loads the Keras 3 model; Keras 3 and tf_keras can
    live in one process, and both hold the same four arrays in the same order.
    """
    from helpers import training

    require_legacy_keras()
    source = training.keras_pretrained(epochs=epochs, seed=seed, filters=filters)
    model = build_legacy_cnn(filters=filters, seed=seed)
    model.set_weights(source.get_weights())
    return model


def compile_model(model, lr: float = 1e-4):
    """Compile a tf_keras classifier with Adam and sparse cross-entropy on logits; lesson 12."""
    import tf_keras

    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=lr),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def quantize(model):
    """Wrap every supported layer with fake quantization (tfmot ``quantize_model``); lesson 12."""
    require_legacy_keras()
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras.quantize_model(model)


def quantize_with(model, annotate: Callable):
    """Rebuild a Sequential model as Functional with ``annotate(layer)`` applied, then quantize_apply.

    A Functional graph matters: quantize_apply puts a QuantizeLayer on the model input only when
    the first annotated layer reads the ``Input``, and without it TFLite keeps the layer float;
    lesson 12.
    """
    require_legacy_keras()
    import tensorflow_model_optimization as tfmot
    import tf_keras

    inputs = tf_keras.Input(shape=model.input_shape[1:], name="image")
    x = inputs
    for layer in model.layers:
        fresh = layer.__class__.from_config(layer.get_config())
        x = annotate(fresh)(x)
    rebuilt = tf_keras.Model(inputs, x, name=model.name)
    rebuilt.set_weights(model.get_weights())
    return tfmot.quantization.keras.quantize_apply(rebuilt)


def quantize_only(model, layer_types: tuple[str, ...] = ("Reshape", "Conv2D")):
    """Quantize only the layers of the given class names (annotate, then apply); lesson 12."""
    require_legacy_keras()
    import tensorflow_model_optimization as tfmot

    known = {type(layer).__name__ for layer in model.layers}
    unknown = set(layer_types) - known
    if unknown:
        raise ValueError(f"the model has no layers of type {sorted(unknown)}; it has {sorted(known)}")

    def annotate(layer):
        # Only annotated layers get fake-quant wrappers; the rest stay float.
        if type(layer).__name__ in layer_types:
            return tfmot.quantization.keras.quantize_annotate_layer(layer)
        return layer

    return quantize_with(model, annotate)


def quantized_layer_types(model) -> list[str]:
    """Class names of the layers tfmot wrapped with fake quantization, sorted; lesson 12."""
    return sorted(type(layer.layer).__name__ for layer in model.layers
                  if type(layer).__name__.startswith("QuantizeWrapper"))


def fit(model, split: data.Split, epochs: int, batch_size: int = 64, desc: str = "fine-tuning"):
    """Train a compiled tf_keras model on a split, one tqdm bar over the batches; lesson 12."""
    import tf_keras
    from tqdm.auto import tqdm

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    x, y = data.keras_arrays(split)
    steps = epochs * int(np.ceil(len(y) / batch_size))

    class Progress(tf_keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=steps, desc=desc, leave=False)

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update()

        def on_train_end(self, logs=None):
            self.bar.close()

    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True,
                        callbacks=[Progress()])
    return history.history["loss"]


def convert_qat(model, io_type: str = "float") -> bytes:
    """Convert a QAT (or annotated) tf_keras model to TFLite; ``io_type`` "float", "uint8", "int8".

    The fake-quant ranges learnt in training become the int8 scales, so no representative
    dataset is needed; lesson 12.
    """
    if io_type not in {"float", "uint8", "int8"}:
        raise ValueError(f"io_type must be 'float', 'uint8' or 'int8', got {io_type!r}")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if io_type != "float":
        converter.inference_input_type = getattr(tf, io_type)
        converter.inference_output_type = getattr(tf, io_type)
    with contextlib.redirect_stdout(io.StringIO()):  # converter chatter, not a result
        return converter.convert()


def dtype_counts(lite_model) -> dict[str, int]:
    """How many tensors of each dtype a LiteModel's flatbuffer holds; lesson 12."""
    counts: dict[str, int] = {}
    for tensor in lite_model.tensors():
        counts[tensor["dtype"]] = counts.get(tensor["dtype"], 0) + 1
    return dict(sorted(counts.items()))


def measure_tflite(model: bytes, split: data.Split, threads: int = 1, repeats: int = 100) -> dict:
    """Accuracy, predictions, size and batch-1 LiteRT latency of TFLite bytes; lesson 12.

    ``predictions`` (one class per image of ``split``) feed the paired comparisons.
    """
    from helpers import measure, tflite

    lite = tflite.LiteModel(model, num_threads=threads)
    x, y = data.keras_arrays(split)
    predictions = lite.predict(x).argmax(axis=1)
    lite.set_batch(1)
    one = lite.quantize_input(x[:1])
    timing = measure.latency(lambda: lite.invoke(one), threads=threads, repeats=repeats)
    return {"accuracy": float(np.mean(predictions == y)), "predictions": predictions,
            "size_bytes": measure.tflite_size_bytes(model), "timing": timing}


def child_env(legacy: bool) -> dict[str, str]:
    """This process' environment with the legacy-Keras switch set or removed.

    Removing it matters: importing tensorflow_model_optimization sets TF_USE_LEGACY_KERAS=1 in
    ``os.environ`` itself, and every child process inherits ``os.environ``.
    """
    environ = dict(os.environ)
    environ.pop(LEGACY_ENV, None)
    if legacy:
        environ[LEGACY_ENV] = "1"
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return environ


@dataclass
class FreshRun:
    """What a fresh Python process printed, and the last line of its error if it failed."""

    stdout: str
    error: str | None

    def raise_error(self) -> None:
        """Re-raise the child's error here, so a notebook cell shows it; lesson 12."""
        if self.error is not None:
            raise RuntimeError(f"in a fresh process: {self.error}")


@dataclass
class FreshProcess:
    """Python code running in a fresh process started by :func:`start_fresh`."""

    process: subprocess.Popen

    def result(self, timeout: float = 300) -> FreshRun:
        """Wait for the child and return what it printed and its last error line; lesson 12."""
        out, err = self.process.communicate(timeout=timeout)
        error = None
        if self.process.returncode != 0:
            lines = [line for line in err.strip().splitlines() if line.strip()]
            error = lines[-1] if lines else f"exit status {self.process.returncode}"
        return FreshRun(out, error)


def start_fresh(code: str, legacy: bool = False) -> FreshProcess:
    """Start Python ``code`` in a fresh process (legacy Keras or not), in the background; lesson 12.

    Its output goes to pipes: meant for short scripts that print a few lines.
    """
    return FreshProcess(subprocess.Popen([sys.executable, "-c", code], env=child_env(legacy),
                                         text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))


def run_fresh(code: str, legacy: bool = False, timeout: float = 300, check: bool = True):
    """Run Python ``code`` in a fresh process (legacy Keras or not) and wait; lesson 12.

    With ``check`` it returns the child's stdout or raises with the child's last error line;
    without, it returns a :class:`FreshRun` either way.
    """
    result = start_fresh(code, legacy).result(timeout)
    if check:
        result.raise_error()
        return result.stdout
    return result
