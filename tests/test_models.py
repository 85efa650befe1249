"""helpers.models and helpers.training: shapes, fusion groups, the recipe cache."""

from __future__ import annotations

import pytest
import torch

from helpers import models, training


def test_models_map_digits_to_ten_logits():
    x = torch.randn(4, 1, 28, 28)
    for name in models.TORCH_MODELS:
        assert models.build_torch_model(name)(x).shape == (4, 10)
    assert models.SmallCNN(eager=False)(x).shape == (4, 10)


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="course models are"):
        models.build_torch_model("resnet1000")


def test_fusion_groups_name_real_modules_and_fuse():
    model = models.SmallCNN().eval()
    names = dict(model.named_modules())
    for group in model.fusion_groups():
        assert all(name in names for name in group)
    fused = torch.ao.quantization.fuse_modules(model, model.fusion_groups())
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(fused(x), model(x), atol=1e-4, rtol=1e-4)


def test_eager_and_plain_cnn_compute_the_same_function():
    torch.manual_seed(0)
    eager = models.SmallCNN(eager=True).eval()
    plain = models.SmallCNN(eager=False).eval()
    plain.load_state_dict(eager.state_dict())
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(eager(x), plain(x))


def test_count_parameters():
    assert models.count_parameters(torch.nn.Linear(3, 2)) == 8


def test_recipe_key_changes_with_recipe_and_architecture():
    base = training.Recipe(model="mlp")
    assert base.key() == training.Recipe(model="mlp").key()
    assert base.key() != training.Recipe(model="mlp", epochs=4).key()
    assert base.key("a") != base.key("b")


def test_pretrained_trains_once_then_loads_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    first = training.pretrained("mlp", epochs=1, hidden=16)
    files = list(tmp_path.glob("mlp-*.pt"))
    assert len(files) == 1
    second = training.pretrained("mlp", epochs=1, hidden=16)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not second.training


def test_eager_and_plain_small_cnn_share_one_trained_model(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    eager = training.pretrained("small_cnn", epochs=1, source="subset", width=4)
    plain = training.pretrained("small_cnn", epochs=1, source="subset", width=4, eager=False)
    assert len(list(tmp_path.glob("small_cnn-*.pt"))) == 1
    assert plain.skip is None and eager.skip is not None
    for a, b in zip(eager.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_corrupt_cache_file_is_retrained(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    training.pretrained("mlp", epochs=1, hidden=8)
    (cached,) = tmp_path.glob("mlp-*.pt")
    cached.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="retraining"):
        model = training.pretrained("mlp", epochs=1, hidden=8)
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_train_epochs_rejects_zero_epochs():
    from helpers import data

    with pytest.raises(ValueError, match="epochs must be >= 1"):
        training.train_epochs(models.MLP(), data.load_mnist().calib, epochs=0)


def test_depthwise_separable_net_shapes_and_fusion():
    import torch.ao.quantization as tq

    net = models.build_torch_model("ds_cnn", width=16, blocks=3).eval()
    x = torch.randn(4, 1, 28, 28)
    assert tuple(net(x).shape) == (4, 10)
    depthwise = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 3 and all(m.groups == m.in_channels == 16 for m in depthwise)
    fused = tq.fuse_modules(net, net.fusion_groups())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():
        assert torch.allclose(fused(x), net(x), atol=1e-5)
    with pytest.raises(ValueError, match="blocks"):
        models.DepthwiseSeparableNet(blocks=0)


def test_training_lock_makes_a_second_trainer_wait(tmp_path):
    import threading
    import time

    events = []
    inside = threading.Event()

    def first():
        with training.training_lock(tmp_path / "mlp-x.pt"):
            inside.set()
            time.sleep(0.3)
            events.append("first leaves")

    def second():
        inside.wait()
        with training.training_lock(tmp_path / "mlp-x.pt"):
            events.append("second enters")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert events == ["first leaves", "second enters"]
