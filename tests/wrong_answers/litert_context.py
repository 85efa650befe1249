"""Small models and files the wrong-answer cases of lessons 09 to 11 share, built once.

Everything is cached per test process: a 784-16-10 dense Keras model (untrained: the checks
use labels whose accuracy is known in advance) and its conversions, and a stack of 1x1
convolutions wide enough that a file's size is its tensors (for 11's ``predict_size``).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from helpers import data, litert_tools, tflite


@cache
def tf():
    return tflite.import_tensorflow()


@cache
def dense_model():
    """784-16-10 dense net on 28x28 images: one weight tensor above 1,024 elements, one below."""
    tf()
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((28, 28), name="image"), keras.layers.Flatten(),
                             keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(10)])


@cache
def test_images(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    return data.keras_arrays(data.load_mnist().test.take(n))


@cache
def dense_file(mode: str) -> bytes:
    calib = data.keras_arrays(data.load_mnist().calib.take(32))[0]
    return tflite.convert_keras(dense_model(), mode, calib, samples=32)


@cache
def wide_files() -> dict[str, bytes]:
    """fp32, int8, 16x8 and AEQ int4-weight files of six 384-channel 1x1 convolutions."""
    tf()
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 16))
    x = inputs
    for _ in range(6):
        x = keras.layers.Conv2D(384, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    calib = np.random.default_rng(0).random((8, 8, 8, 16), dtype=np.float32)
    files = {mode: tflite.convert_keras(model, mode, calib, samples=8)
             for mode in ("fp32", "int8", "16x8")}
    files["int4 weights"] = litert_tools.aeq_quantize(files["fp32"], "weight_only_wi4_afp32")
    return files
