"""Train the course models once and cache them under ``data/cache`` by a hash of the recipe.

Introduced in lesson 00. Any lesson can call :func:`pretrained` and get the same trained
weights, whether or not an earlier lesson ran: the first call trains (seconds on a laptop),
later calls load the cached ``state_dict`` with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers import data, env, models, paths

# Bump when training code changes in a way that changes the weights, so caches are rebuilt.
TRAINING_CODE_VERSION = 1


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a trained model; its hash names the cache file."""

    model: str
    epochs: int = 3
    lr: float = 2e-3
    batch_size: int = 64
    seed: int = 0
    source: str = data.DEFAULT_SOURCE
    model_kwargs: dict = field(default_factory=dict)

    def key(self, architecture: str = "") -> str:
        """Hash of the recipe, the training code version and the model's layer shapes."""
        payload = json.dumps(
            {**asdict(self), "code": TRAINING_CODE_VERSION, "architecture": architecture},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def cache_path(self, architecture: str = "", suffix: str = ".pt") -> Path:
        return paths.cache_dir() / f"{self.model}-{self.key(architecture)}{suffix}"


def weights_digest(model: nn.Module) -> str:
    """A short hash of a model's state dict: the cache key of what is built from it; lessons 09, 13."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def architecture_of(model: nn.Module) -> str:
    """Parameter names and shapes: a changed layer gives a new cache key, never a load error."""
    return ";".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())


def run_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
              bar=None) -> float:
    """One optimizer pass over ``loader`` in the model's current mode; the mean loss; lesson 00."""
    losses = []
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update()
    return float(np.mean(losses))


def train_epochs(
    model: nn.Module,
    split: data.Split,
    epochs: int,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    desc: str = "training",
    after_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train with Adam and cross-entropy, showing a progress bar; returns the loss per epoch.

    ``after_epoch(epoch_number, mean_loss)`` runs after each epoch (QAT uses it to freeze
    observers and batch norm, and to measure accuracy); the model is back in train mode for
    the next epoch whatever it does.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    env.seed_everything(seed)
    loader = data.torch_loader(split, batch_size=batch_size, shuffle=True, seed=seed)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    with tqdm(total=epochs * len(loader), desc=desc, leave=False) as bar:
        for epoch in range(epochs):
            model.train()
            history.append(run_epoch(model, loader, optimizer, loss_fn, bar))
            if after_epoch is not None:
                after_epoch(epoch + 1, history[-1])
            bar.set_postfix(epoch=epoch + 1, loss=f"{history[-1]:.3f}")
    model.eval()
    return history


def pretrained(name: str, epochs: int = 3, source: str = data.DEFAULT_SOURCE, seed: int = 0,
               lr: float = 2e-3, **model_kwargs) -> nn.Module:
    """A trained course model in eval mode, from the cache or trained now; lesson 00."""
    # ``eager`` only changes how SmallCNN's skip connection is written (FloatFunctional for
    # eager-mode quantization, a plain + for FX and PT2E): the same function and parameters,
    # so both variants share one trained model instead of training it twice.
    recipe = Recipe(model=name, epochs=epochs, lr=lr, seed=seed, source=source,
                    model_kwargs={k: v for k, v in model_kwargs.items() if k != "eager"})
    env.seed_everything(seed)
    model = models.build_torch_model(name, **model_kwargs)
    path = recipe.cache_path(architecture_of(model))
    with training_lock(path):
        if path.exists():
            try:
                model.load_state_dict(torch.load(path, weights_only=True))
                return model.eval()
            except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
                warnings.warn(f"cached weights {path.name} are unreadable ({err}); retraining",
                              stacklevel=2)
                path.unlink()
        splits = data.load_mnist(source)
        train_epochs(model, splits.train, epochs=epochs, lr=lr, batch_size=recipe.batch_size,
                     seed=seed, desc=f"training {name}")
        _atomic_save(model.state_dict(), path)
    return model.eval()


@contextlib.contextmanager
def training_lock(path: Path):
    """Hold an exclusive lock for one cache entry: a second notebook that needs the same model
    waits for the first to finish training, then loads its weights instead of training again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_save(state: dict, path: Path) -> None:
    """Write then rename, so two notebooks training at once never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    torch.save(state, tmp)
    os.replace(tmp, path)


def keras_pretrained(epochs: int = 5, source: str = data.DEFAULT_SOURCE, seed: int = 0,
                     filters: int = 12):
    """The Keras MNIST CNN, trained on the course data or loaded from the cache; lesson 09."""
    import keras

    recipe = Recipe(model="keras_cnn", epochs=epochs, seed=seed, source=source,
                    model_kwargs={"filters": filters, "keras": keras.__version__})
    model = models.build_keras_cnn(filters=filters, seed=seed)
    path = recipe.cache_path(suffix=".weights.h5")
    # Cached weights load before compile(): the file holds no optimizer state worth restoring,
    # and a compiled model would warn that it skipped it.
    cached = path.exists()
    if cached:
        model.load_weights(path)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    if cached:
        return model
    splits = data.load_mnist(source)
    x, y = data.keras_arrays(splits.train)
    model.fit(x, y, epochs=epochs, batch_size=recipe.batch_size, verbose=0,
              callbacks=[keras_progress(epochs)])
    tmp = path.with_name(path.name.replace(".weights.h5", ".tmp.weights.h5"))
    model.save_weights(tmp)
    os.replace(tmp, path)
    return model


def keras_progress(epochs: int, desc: str = "training keras_cnn"):
    """A Keras callback showing one tqdm bar over the epochs (Keras' own bar floods notebooks)."""
    import keras

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=epochs, desc=desc, leave=False)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.update()
            self.bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.3f}")

        def on_train_end(self, logs=None):
            self.bar.close()

    return Progress()
