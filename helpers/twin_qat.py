"""Keras QAT of the capstone network's twin, in a legacy-Keras child process, cached by recipe; lesson 13.

tfmot needs legacy Keras for a whole process (lesson 12), and the capstone kernel runs Keras 3,
so the fine-tuning runs in a child started with ``TF_USE_LEGACY_KERAS=1``: it loads the
trained PyTorch network from the cache, builds the ``tf_keras`` twin with the same weights
(:func:`helpers.twin.keras_twin`), wraps it with ``quantize_model``, fine-tunes it and writes
the converted file. The file is cached under a hash of everything that makes it (the PyTorch
weights, the fine-tuning recipe, the package versions), so a rerun reuses it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers import keras_qat, paths

CODE_VERSION = 1
PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "torch")


@dataclass(frozen=True)
class Recipe:
    """The trained network (its ``training.pretrained`` arguments) and the QAT fine-tuning."""

    pretrained: dict
    weights: str  # capstone.weights_digest of that network
    epochs: int = 1
    images: int | None = None
    lr: float = 1e-4
    io_type: str = "uint8"

    def path(self) -> Path:
        """Where the converted file of this recipe is cached."""
        versions = {p: importlib.metadata.version(p) for p in PACKAGES}
        payload = json.dumps({**self.__dict__, "versions": versions, "code": CODE_VERSION},
                             sort_keys=True, default=str)
        digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
        return paths.cache_dir() / f"keras-qat-twin-{digest}.tflite"


def export(recipe: Recipe, path: str) -> None:
    """Run in the legacy-Keras child: pretrained network -> tf_keras twin -> QAT -> file."""
    keras_qat.require_legacy_keras()
    import tf_keras

    from helpers import capstone, data, env, training, twin

    env.seed_everything(0)
    net = training.pretrained("ds_cnn", **recipe.pretrained)
    if capstone.weights_digest(net) != recipe.weights:
        raise RuntimeError("the cached PyTorch network differs from the parent's; rerun from the top")
    model = keras_qat.compile_model(keras_qat.quantize(twin.keras_twin(net, tf_keras)), lr=recipe.lr)
    keras_qat.fit(model, data.load_mnist().train.take(recipe.images), epochs=recipe.epochs,
                  desc="Keras QAT")
    target = Path(path)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(keras_qat.convert_qat(model, io_type=recipe.io_type))
    tmp.replace(target)


@dataclass
class Pending:
    """A Keras QAT file being made in a child process, or already cached."""

    path: Path
    process: subprocess.Popen | None = None
    reused: bool = False

    @property
    def log(self) -> Path:
        """The child's output (a file, not a pipe: a full pipe would stall the child)."""
        return self.path.with_suffix(".log")

    def wait(self, timeout: float = 3600) -> bytes:
        """The file's bytes once the child is done; raise with its last error lines if it failed."""
        if self.process is not None:
            self.process.wait(timeout=timeout)
            if self.process.returncode != 0 or not self.path.exists():
                lines = self.log.read_text(errors="replace").strip().splitlines()
                raise RuntimeError("the Keras QAT child process failed:\n" + "\n".join(lines[-15:]))
        return self.path.read_bytes()


def start(recipe: Recipe, reuse: bool = True) -> Pending:
    """Reuse the cached file of ``recipe``, or start the child that makes it; lesson 13."""
    path = recipe.path()
    if reuse and path.exists() and path.stat().st_size > 0:
        return Pending(path, reused=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    code = ("from helpers import twin_qat; "
            f"twin_qat.export(twin_qat.Recipe(**{recipe.__dict__!r}), {str(path)!r})")
    pending = Pending(path)
    with open(pending.log, "w") as log:
        pending.process = subprocess.Popen([sys.executable, "-c", code],
                                           env=keras_qat.child_env(legacy=True),
                                           stdout=log, stderr=subprocess.STDOUT)
    return pending
