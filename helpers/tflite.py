"""TensorFlow Lite models through the LiteRT interpreter, fed and read correctly.

Introduced in lesson 09. ``tf.lite.Interpreter`` is deprecated; the course runs every
``.tflite`` file with ``ai_edge_litert.interpreter.Interpreter``. :class:`LiteModel` quantizes
float inputs and dequantizes outputs with each tensor's own scale and zero point, and refuses
an input of the wrong dtype with a message that says how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CONVERSION_MODES = ("fp32", "dynamic", "int8-fallback", "int8", "int8-int8io", "float16", "16x8")


class LiteModel:
    """A ``.tflite`` model loaded into a LiteRT interpreter with a fixed thread count."""

    def __init__(self, model: bytes | str | os.PathLike, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        if isinstance(model, (bytes, bytearray)):
            self.interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
        else:
            path = Path(model)
            if not path.exists():
                raise FileNotFoundError(f"no .tflite file at {path}")
            self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.threads = num_threads
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
        """Every tensor in the flatbuffer: name, dtype, shape and quantization parameters."""
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
            })
        return rows


def quantize_to(x: np.ndarray, detail: dict) -> np.ndarray:
    """Quantize float ``x`` for a tensor described by ``detail`` (from get_input_details)."""
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
    """Dequantize raw values of a tensor described by ``detail`` to float32."""
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


def convert_keras(model, mode: str = "fp32", calib_images: np.ndarray | None = None,
                  samples: int = 100) -> bytes:
    """Convert a Keras model to TFLite bytes in one of :data:`CONVERSION_MODES`; lesson 13.

    Lessons 09 to 11 write each converter call out in full; this is the same calls in one
    place for the capstone.
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
    return converter.convert()
