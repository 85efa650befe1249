"""helpers.litert_models: the Keras DS-CNN and ELU CNN, and their recipe-keyed cache."""

from __future__ import annotations

import pytest

from helpers import litert_models, tflite


@pytest.fixture(scope="module")
def keras():
    tflite.import_tensorflow()
    import keras

    return keras


def test_ds_cnn_mirrors_the_torch_network(keras) -> None:
    model = litert_models.build_keras_ds_cnn()
    depthwise = [layer for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    relu6 = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert len(depthwise) == 5 and len(relu6) == 11
    assert all(layer.max_value == 6.0 for layer in relu6)
    assert model.output_shape == (None, 10)
    with pytest.raises(ValueError, match="blocks must be"):
        litert_models.build_keras_ds_cnn(blocks=0)


def test_elu_cnn_uses_elu(keras) -> None:
    model = litert_models.build_keras_cnn_elu()
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert conv.activation.__name__ == "elu" and model.count_params() == 20_410


def test_keras_trained_loads_cached_weights_without_training(keras, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    from helpers import training

    recipe = training.Recipe(model="keras_cnn_elu", epochs=1, seed=0, batch_size=128,
                             model_kwargs={"keras": keras.__version__})
    prepared = litert_models.build_keras_cnn_elu(seed=3)
    prepared.save_weights(recipe.cache_path(suffix=".weights.h5"))
    loaded = litert_models.keras_trained("cnn_elu", epochs=1)
    for a, b in zip(loaded.get_weights(), prepared.get_weights(), strict=True):
        assert (a == b).all()
    with pytest.raises(KeyError, match="unknown Keras model"):
        litert_models.keras_trained("resnet", epochs=1)
