"""Keras models of the LiteRT lessons beyond the MNIST CNN, trained once and cached by recipe.

Introduced in lesson 10.

* :func:`build_keras_ds_cnn`: the Keras twin of :class:`helpers.models.DepthwiseSeparableNet`
  (a strided stem conv, then blocks of a 3x3 depthwise and a 1x1 pointwise convolution, each
  followed by batch norm and ReLU6, global average pooling and a dense head). After the
  converter folds batch norm into the convolutions, its channels have very different ranges:
  the deeper network on which per-layer quantization error is worth reading.
* :func:`build_keras_cnn_elu`: the MNIST CNN of lesson 09 with ELU instead of ReLU, an
  activation for which TFLite has no int8 kernel, so full-integer conversion falls back to
  float around it.
* :func:`keras_trained`: either model trained on the course's train split, cached in
  ``data/cache`` under a hash of its recipe like every other course model.
"""

from __future__ import annotations

import os

from helpers import data, models, training

KERAS_MODELS = ("ds_cnn", "cnn_elu")


def build_keras_ds_cnn(width: int = 32, blocks: int = 5, seed: int = 0):
    """A MobileNet-v1-style depthwise-separable CNN for 28x28 digits (BN, ReLU6); lesson 10."""
    import keras

    if blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    layers = keras.layers
    keras.utils.set_random_seed(seed)

    def bn_relu6(x, name: str):
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_relu6")(x)

    inputs = keras.Input(shape=(28, 28), name="image")
    x = layers.Reshape((28, 28, 1))(inputs)
    x = bn_relu6(layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False,
                               name="stem")(x), "stem")
    for index in range(blocks):
        stride = 2 if index == 1 else 1
        x = bn_relu6(layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                            name=f"dw{index}")(x), f"dw{index}")
        x = bn_relu6(layers.Conv2D(width, 1, use_bias=False, name=f"pw{index}")(x),
                     f"pw{index}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x), name="ds_cnn")


def build_keras_cnn_elu(filters: int = 12, seed: int = 0):
    """The lesson-09 MNIST CNN with an ELU after the convolution; lesson 10."""
    return models.build_keras_cnn(filters=filters, seed=seed, activation="elu", name="cnn_elu")


def _build(name: str, seed: int):
    if name == "ds_cnn":
        return build_keras_ds_cnn(seed=seed)
    if name == "cnn_elu":
        return build_keras_cnn_elu(seed=seed)
    raise KeyError(f"unknown Keras model {name!r}; the LiteRT lessons' models are {KERAS_MODELS}")


def keras_trained(name: str, epochs: int = 2, seed: int = 0,
                  source: str = data.DEFAULT_SOURCE):
    """A model of :data:`KERAS_MODELS` trained on the train split, or loaded from the cache."""
    import keras

    recipe = training.Recipe(model=f"keras_{name}", epochs=epochs, seed=seed, source=source,
                             batch_size=128, model_kwargs={"keras": keras.__version__})
    model = _build(name, seed)
    path = recipe.cache_path(suffix=".weights.h5")
    cached = path.exists()
    if cached:
        model.load_weights(path)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    if cached:
        return model
    x, y = data.keras_arrays(data.load_mnist(source).train)
    model.fit(x, y, epochs=epochs, batch_size=recipe.batch_size, verbose=0,
              callbacks=[training.keras_progress(epochs, desc=f"training keras {name}")])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name.replace(".weights.h5", f".{os.getpid()}.tmp.weights.h5"))
    model.save_weights(tmp)
    os.replace(tmp, path)  # atomic: a second notebook never reads half a file
    return model
