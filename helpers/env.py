"""The machine the course runs on: seeds, quick mode, CPU features, quantized engines.

Introduced in lesson 00 (start_here). Nothing here runs on import.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

QUICK_ENV = "COURSE_QUICK"

# The engines PyTorch's int8 kernels can use, and the CPU families each is built for.
ENGINE_FOR_MACHINE = {"x86_64": "x86", "amd64": "x86", "arm64": "qnnpack", "aarch64": "qnnpack"}

PACKAGES = (
    "torch",
    "torchvision",
    "torchao",
    "tensorflow",
    "keras",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "numpy",
    "sentence-transformers",
)


def quick_default() -> bool:
    """True when ``COURSE_QUICK=1`` (set by CI and ``course run --quick``); lesson 00."""
    value = os.environ.get(QUICK_ENV, "0").strip().lower()
    if value not in {"0", "1", "true", "false", ""}:
        raise ValueError(f"{QUICK_ENV} must be 0 or 1, got {value!r}")
    return value in {"1", "true"}


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy, PyTorch and (if imported) TensorFlow in one call; lesson 00."""
    import sys

    random.seed(seed)
    np.random.seed(seed)
    import torch

    torch.manual_seed(seed)
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].random.set_seed(seed)


def cpu_features() -> dict[str, bool]:
    """The SIMD features that decide how fast int8 kernels run here; lesson 00."""
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags.update(line.split(":", 1)[1].split())
    machine = platform.machine().lower()
    return {
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "avx512_vnni": "avx512_vnni" in flags or "avx512vnni" in flags,
        "avx_vnni": "avx_vnni" in flags,  # the 256-bit VNNI of CPUs without AVX-512
        "amx_int8": "amx_int8" in flags,
        # Apple Silicon has no /proc/cpuinfo, but every arm64 Mac has NEON and dot-product.
        "arm_neon": "asimd" in flags or "neon" in flags or machine == "arm64",
        "arm_dotprod": "asimddp" in flags or machine == "arm64",
    }


def default_engine(machine: str | None = None) -> str:
    """The PyTorch quantized engine the course uses on this CPU (x86 or qnnpack); lesson 00."""
    machine = (machine or platform.machine()).lower()
    if machine not in ENGINE_FOR_MACHINE:
        raise RuntimeError(
            f"no quantized engine is known for CPU architecture {machine!r}; the course "
            f"supports {sorted(set(ENGINE_FOR_MACHINE))}. Pass one of "
            "torch.backends.quantized.supported_engines to select_engine() explicitly."
        )
    return ENGINE_FOR_MACHINE[machine]


def select_engine(engine: str | None = None) -> str:
    """Set ``torch.backends.quantized.engine`` (default: the one for this CPU) and return it."""
    import torch

    engine = engine or default_engine()
    supported = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if engine not in supported:
        raise ValueError(
            f"quantized engine {engine!r} is not available in this PyTorch build; "
            f"available: {supported}. On x86-64 use 'x86' (or 'fbgemm'); on Arm and "
            "Apple Silicon use 'qnnpack'."
        )
    torch.backends.quantized.engine = engine
    return engine


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package, or None if it is missing."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@dataclass
class EnvironmentReport:
    """What lesson 00 prints about this machine, with a plain-language verdict."""

    python: str
    machine: str
    cores: int
    packages: dict[str, str | None]
    cpu: dict[str, bool]
    engines: list[str]
    engine: str | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "python": self.python,
            "machine": self.machine,
            "cores": self.cores,
            "packages": self.packages,
            "cpu": self.cpu,
            "engines": self.engines,
            "engine": self.engine,
            "problems": self.problems,
            "notes": self.notes,
        }

    def __str__(self) -> str:
        lines = [
            f"Python {self.python} on {self.machine}, {self.cores} cores",
            "Packages: "
            + ", ".join(f"{k} {v or 'MISSING'}" for k, v in self.packages.items()),
            "CPU features: "
            + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in self.cpu.items()),
            f"PyTorch quantized engines: {self.engines}; selected: {self.engine}",
        ]
        lines += [f"NOTE: {n}" for n in self.notes]
        lines += [f"PROBLEM: {p}" for p in self.problems]
        lines.append("Verdict: " + self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        if self.problems:
            return "this machine cannot run every lesson yet; fix the problems listed above."
        if any(self.cpu.get(k) for k in ("avx512_vnni", "avx_vnni", "amx_int8", "arm_dotprod")):
            return ("ready. Your CPU has int8 dot-product instructions (VNNI or Arm dot-product), "
                    "so int8 kernels can be several times faster than fp32 on layers big enough "
                    "to be compute-bound (lesson 07's ResNet18); tiny models at batch 1 may not "
                    "speed up at all.")
        if self.cpu.get("avx2") or self.cpu.get("arm_neon"):
            return ("ready. Your CPU has SIMD for int8 but no VNNI, so expect smaller int8 "
                    "speed-ups than the course text describes.")
        return "ready, but without SIMD int8 support: sizes shrink, speed-ups will be small."


def environment_report() -> EnvironmentReport:
    """Collect versions, CPU features and quantized engines into one report; lesson 00."""
    import torch

    packages = package_versions()
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    problems: list[str] = []
    notes: list[str] = []
    for name in ("torch", "tensorflow", "ai-edge-litert", "numpy"):
        if packages.get(name) is None:
            problems.append(f"{name} is not installed: run `./course lab` or "
                            "`pip install -r requirements.txt` in the course environment.")
    try:
        engine: str | None = default_engine()
        if engine not in engines:
            problems.append(f"PyTorch here has no {engine!r} engine (it has {engines}).")
            engine = None
    except RuntimeError as err:
        engine = None
        problems.append(str(err))
    if engine == "qnnpack":
        notes.append("Arm CPU: the course selects the 'qnnpack' engine, whose default qconfig is "
                     "per-tensor; numbers will differ from the x86 ones in the text.")
    return EnvironmentReport(
        python=platform.python_version(),
        machine=platform.machine(),
        cores=os.cpu_count() or 1,
        packages=packages,
        cpu=cpu_features(),
        engines=engines,
        engine=engine,
        problems=problems,
        notes=notes,
    )


# Warnings a lesson has already shown and explained; after that they are noise.
EXPLAINED_WARNINGS = (
    r"torch\.ao\.quantization is deprecated",
    r".*quantized tensor creation functions.*",
    r".*tf\.lite\.Interpreter is deprecated.*",
    r".*Statistics for quantized inputs were expected.*",
)


def hide_explained_warnings() -> None:
    """Silence the deprecation warnings the course has already shown and explained once."""
    import warnings

    for pattern in EXPLAINED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
