"""Shared helpers for the quantization course.

Import the module you need (``from helpers import data, measure``); importing the package
itself is cheap and changes no global state (no thread counts, seeds, styles or warnings).
"""

__version__ = "0.1.0"

__all__ = [
    "checks",
    "data",
    "env",
    "measure",
    "models",
    "paths",
    "plot",
    "quant",
    "results",
    "tflite",
    "training",
]
