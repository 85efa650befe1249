"""TensorFlow Lite models through the LiteRT interpreter, fed and read correctly.

Introduced in lesson 09. ``tf.lite.Interpreter`` is deprecated; the course runs every
``.tflite`` file with ``ai_edge_litert.interpreter.Interpreter``. :class:`LiteModel` quantizes
float inputs and dequantizes outputs with each tensor's own scale and zero point, and refuses
an input of the wrong dtype with a message that says how to fix it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from helpers import paths

CONVERSION_MODES = ("fp32", "dynamic", "int8-fallback", "int8", "int8-int8io", "float16", "16x8")


class LiteModel:
    """A ``.tflite`` model in a LiteRT interpreter with a fixed thread count; lesson 09.

    ``xnnpack=False`` runs TFLite's own built-in kernels instead of the XNNPACK delegate
    that LiteRT applies by default on CPU (lesson 09 compares the two).
    """

    def __init__(self, model: bytes | str | os.PathLike, num_threads: int = 1,
                 xnnpack: bool = True) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        resolver = (OpResolverType.AUTO if xnnpack
                    else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        kwargs = {"num_threads": num_threads, "experimental_op_resolver_type": resolver}
        if isinstance(model, (bytes, bytearray)):
            self.interpreter = Interpreter(model_content=bytes(model), **kwargs)
        else:
            path = Path(model)
            if not path.exists():
                raise FileNotFoundError(f"no .tflite file at {path}; write it first with "
                                        "path.write_bytes(converter.convert())")
            self.interpreter = Interpreter(model_path=str(path), **kwargs)
        self.threads = num_threads
        self.xnnpack = xnnpack
        self.interpreter.allocate_tensors()
        self.batch = int(self.input_detail["shape"][0])

    @property
    def input_detail(self) -> dict:
        return self.interpreter.get_input_details()[0]

    @property
    def output_detail(self) -> dict:
        return self.interpreter.get_output_details()[0]

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input_detail["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        return np.dtype(self.output_detail["dtype"])

    def set_batch(self, batch: int) -> None:
        """Resize the input to ``batch`` examples (re-allocates tensors only when it changes)."""
        if batch != self.batch:
            shape = list(self.input_detail["shape"])
            shape[0] = batch
            self.interpreter.resize_tensor_input(self.input_detail["index"], shape)
            self.interpreter.allocate_tensors()
            self.batch = batch

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float inputs to the model's input dtype: q = round(x / scale) + zero_point, clamped."""
        return quantize_to(np.asarray(x, dtype=np.float32), self.input_detail)

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        """The model's raw output back to float: x = (q - zero_point) * scale."""
        return dequantize_from(q, self.output_detail)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """Run one batch given in the model's own input dtype; return the raw output."""
        x = np.asarray(x)
        expected = self.input_dtype
        if x.dtype != expected:
            scale, zero_point = self.input_detail["quantization"]
            how = ("quantize it first with LiteModel.quantize_input(x) "
                   f"(q = round(x / {scale:.6g}) + {zero_point}) or call predict(x) with floats"
                   if expected.kind in "iu" else f"convert it with x.astype(np.{expected})")
            raise TypeError(
                f"this model's input '{self.input_detail['name']}' expects {expected}, "
                f"got {x.dtype}: {how}."
            )
        self.set_batch(x.shape[0])
        if tuple(x.shape[1:]) != tuple(self.input_detail["shape"][1:]):
            raise ValueError(
                f"input shape {tuple(x.shape)} does not match the model's "
                f"(batch, {', '.join(map(str, self.input_detail['shape'][1:]))})"
            )
        self.interpreter.set_tensor(self.input_detail["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_detail["index"]).copy()

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Float inputs in, float outputs out, in batches; works for float and integer models."""
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(
                f"predict() takes float inputs (the images in [0, 1]), got {x.dtype}; to feed "
                "already-quantized values use invoke()"
            )
        if len(x) == 0:
            raise ValueError("predict() got an empty batch")
        outputs = []
        for start in range(0, len(x), batch_size):
            raw = self.invoke(self.quantize_input(x[start : start + batch_size]))
            outputs.append(self.dequantize_output(raw))
        return np.concatenate(outputs)

    def tensors(self) -> list[dict]:
        """Every tensor in the flatbuffer: name, dtype, shape, quantization parameters; lesson 09.

        ``is_constant`` marks the tensors stored in the file (weights, biases): those that no
        operator produces and that are not the model's input.
        """
        produced = {i for op in self.interpreter._get_ops_details() for i in op["outputs"]}
        produced |= {d["index"] for d in self.interpreter.get_input_details()}
        rows = []
        for t in self.interpreter.get_tensor_details():
            qp = t.get("quantization_parameters", {})
            rows.append({
                "index": t["index"],
                "name": t["name"],
                "dtype": np.dtype(t["dtype"]).name,
                "shape": tuple(int(s) for s in t["shape"]),
                "scales": np.asarray(qp.get("scales", [])),
                "zero_points": np.asarray(qp.get("zero_points", [])),
                "quantized_dimension": int(qp.get("quantized_dimension", 0)),
                "is_constant": t["index"] not in produced,
            })
        return rows

    def ops(self) -> list[str]:
        """The operator names in the graph, in order; lesson 09.

        With a delegate, the interpreter appends one ``DELEGATE`` node per partition of
        the graph it took over; the original nodes stay listed.
        """
        return [op["op_name"] for op in self.interpreter._get_ops_details()]

    def ops_with_weight_dtype(self) -> list[tuple[str, str | None]]:
        """Each operator with the dtype of its second input (conv and dense weights); lesson 09."""
        dtypes = {t["index"]: np.dtype(t["dtype"]).name
                  for t in self.interpreter.get_tensor_details()}
        return [(op["op_name"], dtypes.get(op["inputs"][1]) if len(op["inputs"]) > 1 else None)
                for op in self.interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]

    def delegate_partitions(self) -> int:
        """How many pieces the XNNPACK delegate runs (each boundary costs a hand-over)."""
        return self.ops().count("DELEGATE")


def quantize_to(x: np.ndarray, detail: dict) -> np.ndarray:
    """Quantize float ``x`` for a tensor described by ``detail`` (from get_input_details); lesson 10."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    if scale == 0:
        raise ValueError(f"tensor '{detail['name']}' is {dtype} but has no quantization scale")
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_from(q: np.ndarray, detail: dict) -> np.ndarray:
    """Dequantize raw values of a tensor described by ``detail`` to float32; lesson 10."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return q.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


def representative_dataset(images: np.ndarray, samples: int = 100):
    """A converter's representative dataset: ``samples`` images, one per batch; lesson 10."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(
            "the representative dataset is empty or not a batch of images: pass the calibration "
            "images, e.g. data.keras_arrays(mnist.calib)[0]"
        )
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    chosen = images[:samples]

    def generator():
        for image in chosen:
            yield [image[None, ...]]

    return generator


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the converter's chatter: Python's and the C++ logs written to fds 1 and 2; lesson 09."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        try:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def load_triton_before_tensorflow() -> None:
    """Import triton (PyTorch's compiler back end) now if TensorFlow is not loaded yet; lesson 09.

    With these wheels, a process that loads TensorFlow first and then triton (which
    ``torch.compile``, ``torch.export`` and torchao pull in) dies with a segmentation fault;
    the other order works. Call this before TensorFlow is imported in a process that will use
    both (the capstone, PyTorch -> LiteRT, the tests).
    """
    import importlib.util
    import sys

    if "tensorflow" not in sys.modules and importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


def import_tensorflow(threads: int | None = None):
    """Import TensorFlow without its start-up logs; optionally fix its thread count; lesson 09.

    Loads triton first (see :func:`load_triton_before_tensorflow`), so PyTorch's compiler
    stack can still be used in the same process afterwards.
    """
    load_triton_before_tensorflow()
    with quiet():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # "Assets written to ..." on every conversion
        if threads is not None:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        tf.constant(0)  # the device set-up logs come with the first operation
    return tf


def convert_keras(model, mode: str = "fp32", calib_images: np.ndarray | None = None,
                  samples: int = 100, silent: bool = True) -> bytes:
    """Convert a Keras model to TFLite bytes in one of :data:`CONVERSION_MODES`; lesson 11.

    Lessons 09 to 11 write each converter call out in full first; this is the same calls
    in one place for the comparisons and the capstone.
    """
    import tensorflow as tf

    if mode not in CONVERSION_MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {CONVERSION_MODES}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode in {"int8-fallback", "int8", "int8-int8io", "16x8"}:
        if calib_images is None:
            raise ValueError(f"mode {mode!r} needs calib_images for the representative dataset")
        converter.representative_dataset = representative_dataset(calib_images, samples)
    if mode in {"int8", "int8-int8io"}:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_type = tf.uint8 if mode == "int8" else tf.int8
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    if mode == "16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    if not silent:
        return converter.convert()
    with quiet():
        return converter.convert()


def build_mobilenet_like(resolution: int = 128, activation: str = "relu", seed: int = 0):
    """A MobileNetV2-shaped Keras model (3.5M parameters, no batch norm) for latency; lesson 09.

    The inverted-residual layout of MobileNetV2 (expand 1x1, depthwise 3x3, project 1x1, skip
    add) at its width and depth, without batch norm so that it converts in seconds rather
    than the minute ``keras.applications.MobileNetV2`` takes. Untrained: for size and speed only.
    ReLU rather than MobileNetV2's ReLU6: an untrained layer that calibrates to an all-zero
    range gets a tiny scale, and the 16x8 kernels cannot clamp to 6 at that scale (lesson 11).
    """
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((resolution, resolution, 3), name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation=activation)(inputs)
    channels = 32
    for expand, out, repeats, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2),
                                         (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                                         (6, 320, 1, 1)):
        for i in range(repeats):
            y = layers.Conv2D(channels * expand, 1, activation=activation)(x) if expand > 1 else x
            y = layers.DepthwiseConv2D(3, strides=stride if i == 0 else 1, padding="same",
                                       activation=activation)(y)
            y = layers.Conv2D(out, 1)(y)
            x = layers.Add()([x, y]) if i > 0 else y
            channels = out
    x = layers.Conv2D(1280, 1, activation=activation)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(1000, name="logits")(x), name="mobilenet_like")


def cached_conversion(key: str, build: Callable[[], bytes]) -> bytes:
    """TFLite bytes from ``data/cache`` by ``key`` (and TF version), or built and stored; lesson 09.

    For conversions that take long and always give the same file, such as the untrained
    latency model of lessons 09 to 11.
    """
    import tensorflow as tf

    digest = hashlib.sha256(f"{key}|tf{tf.__version__}".encode()).hexdigest()[:12]
    path = paths.cache_dir() / f"tflite-{digest}.tflite"
    if path.exists() and path.stat().st_size > 0:
        return path.read_bytes()
    content = build()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)  # atomic: two notebooks converting at once never see half a file
    return content


def with_outlier_channel(model, gain: float = 100.0):
    """The Keras CNN plus one conv channel of huge activations that the output ignores; lesson 11.

    The extra filter adds ``gain`` times each 3x3 patch of pixels, and the dense layer gives it
    zero weight, so the float model predicts exactly as before. Its activations share one
    per-tensor scale with the real channels, which is what int8 cannot afford and 16x8 can.
    """
    import keras

    from helpers import models

    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    dense = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    kernel, bias = conv.get_weights()
    dense_kernel, dense_bias = dense.get_weights()
    filters = kernel.shape[-1]
    outlier = models.build_keras_cnn(filters=filters + 1)
    new_kernel = np.concatenate([kernel, np.full(kernel.shape[:3] + (1,), gain, kernel.dtype)], -1)
    side = int(round(np.sqrt(dense_kernel.shape[0] / filters)))
    per_position = dense_kernel.reshape(side, side, filters, -1)
    zeros = np.zeros((side, side, 1, per_position.shape[-1]), dense_kernel.dtype)
    new_dense = np.concatenate([per_position, zeros], axis=2).reshape(-1, per_position.shape[-1])
    for layer in outlier.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.set_weights([new_kernel, np.append(bias, 0).astype(bias.dtype)])
        elif isinstance(layer, keras.layers.Dense):
            layer.set_weights([new_dense, dense_bias])
    return outlier
