"""Number formats: bit fields, range, spacing and memory of fp32 ... int4; lesson 01.

Floats store a sign, an exponent and a mantissa (fraction):

    value = (-1)^sign · 2^(exponent - bias) · (1 + mantissa / 2^M)      (normal numbers)
    value = (-1)^sign · 2^(1 - bias)        · (mantissa / 2^M)          (exponent field 0)

with ``bias = 2^(E-1) - 1`` for E exponent bits and M mantissa bits. Rounding to a format is
done by PyTorch's own casts (fp16, bf16 and the two fp8 dtypes), so what the lesson shows is
what a framework stores. Integer formats have no exponent: they need a scale (lesson 02).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from helpers import quant

# name: (exponent bits, mantissa bits, torch dtype, integer dtype to view the bits through)
FLOAT_FORMATS = {
    "fp32": (8, 23, torch.float32, torch.int32),
    "fp16": (5, 10, torch.float16, torch.int16),
    "bf16": (8, 7, torch.bfloat16, torch.int16),
    "fp8_e4m3": (4, 3, torch.float8_e4m3fn, torch.uint8),
    "fp8_e5m2": (5, 2, torch.float8_e5m2, torch.uint8),
}
# name: (bits, signed)
INT_FORMATS = {"int8": (8, True), "uint8": (8, False), "int4": (4, True)}
FORMATS = (*FLOAT_FORMATS, *INT_FORMATS)


def bits_of(fmt: str) -> int:
    """Storage bits of one value in a format ("fp16" -> 16, "int4" -> 4); lesson 01."""
    _check_format(fmt)
    if fmt in FLOAT_FORMATS:
        exponent_bits, mantissa_bits, *_ = FLOAT_FORMATS[fmt]
        return 1 + exponent_bits + mantissa_bits
    return INT_FORMATS[fmt][0]


@dataclass(frozen=True)
class FloatFields:
    """The three bit fields of one stored float, and the value they encode; lesson 01."""

    fmt: str
    sign: int
    exponent: int
    mantissa: int
    exponent_bits: int
    mantissa_bits: int
    value: float

    @property
    def bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def bit_string(self) -> str:
        """Sign | exponent | mantissa, e.g. '0 | 01111011 | 10011001100110011001101'."""
        return (f"{self.sign} | {self.exponent:0{self.exponent_bits}b} | "
                f"{self.mantissa:0{self.mantissa_bits}b}")

    def __str__(self) -> str:
        kind = "subnormal" if self.exponent == 0 and self.mantissa else "normal"
        return (f"{self.fmt:>9}: {self.bit_string}  -> {self.value!r} ({kind}, "
                f"2^({self.exponent} - {self.bias}) · (1 + {self.mantissa}/2^{self.mantissa_bits}))"
                if kind == "normal" else
                f"{self.fmt:>9}: {self.bit_string}  -> {self.value!r} (subnormal)")


def float_fields(x: float, fmt: str = "fp32") -> FloatFields:
    """Round ``x`` to a float format and split its stored bits into fields; lesson 01."""
    exponent_bits, mantissa_bits, dtype, view = _float_format(fmt)
    if not math.isfinite(x):
        raise ValueError(f"float_fields() takes a finite number, got {x}")
    stored = torch.tensor([x], dtype=torch.float32).to(dtype)
    raw = int(stored.view(view).item()) & ((1 << bits_of(fmt)) - 1)  # as unsigned
    return FloatFields(
        fmt=fmt,
        sign=raw >> (exponent_bits + mantissa_bits),
        exponent=(raw >> mantissa_bits) & ((1 << exponent_bits) - 1),
        mantissa=raw & ((1 << mantissa_bits) - 1),
        exponent_bits=exponent_bits,
        mantissa_bits=mantissa_bits,
        value=float(stored.float().item()),
    )


def decode(sign: int, exponent: int, mantissa: int, exponent_bits: int, mantissa_bits: int) -> float:
    """The value of sign / exponent / mantissa fields (normal or subnormal); lesson 01."""
    if exponent_bits < 1 or mantissa_bits < 0:
        raise ValueError("need at least 1 exponent bit and 0 or more mantissa bits")
    if not (0 <= exponent < 2**exponent_bits and 0 <= mantissa < 2**mantissa_bits
            and sign in (0, 1)):
        raise ValueError(f"a field is out of range: sign {sign}, exponent {exponent} "
                         f"(< 2^{exponent_bits}), mantissa {mantissa} (< 2^{mantissa_bits})")
    bias = 2 ** (exponent_bits - 1) - 1
    fraction = mantissa / 2**mantissa_bits
    if exponent == 0:  # subnormal: no hidden leading 1, smallest exponent
        magnitude = 2.0 ** (1 - bias) * fraction
    else:
        magnitude = 2.0 ** (exponent - bias) * (1 + fraction)
    return -magnitude if sign else magnitude


def round_to(x, fmt: str) -> np.ndarray:
    """Round values to a float format with PyTorch's cast; returns float32 values; lesson 01.

    PyTorch saturates fp8 E4M3 casts at ±448 (it has no infinity), but fp16 and E5M2
    overflow to ±inf: that is how an fp16 overflow shows up.
    """
    _, _, dtype, _ = _float_format(fmt)
    values = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return values.to(dtype).float().numpy()


def spacing(x, fmt: str, x_max: float | None = None) -> np.ndarray:
    """Gap from |x| to the next representable value above it (one ULP); lesson 01.

    Floats: 2^(floor(log2|x|) - M), constant below the smallest normal number, NaN above the
    largest finite value. Integers: the scale of a min-max quantizer covering [-x_max, x_max]
    (uint8: [0, x_max]), the same everywhere, NaN outside the range.
    """
    _check_format(fmt)
    magnitude = np.abs(np.asarray(x, dtype=np.float64))
    if fmt in INT_FORMATS:
        if x_max is None or not x_max > 0:
            raise ValueError(f"{fmt} has no exponent: pass x_max > 0, the range its scale covers")
        bits, signed = INT_FORMATS[fmt]
        scale, _ = quant.qparams(-x_max if signed else 0.0, x_max, bits, symmetric=signed)
        return np.where(magnitude <= x_max, scale, np.nan)
    info = torch.finfo(FLOAT_FORMATS[fmt][2])
    mantissa_bits = FLOAT_FORMATS[fmt][1]
    _, exponent = np.frexp(np.maximum(magnitude, info.smallest_normal))
    gap = np.ldexp(1.0, exponent - 1 - mantissa_bits)  # frexp's exponent is floor(log2) + 1
    return np.where(magnitude <= info.max, gap, np.nan)


def format_table() -> list[dict]:
    """Bits, largest value, smallest normal and relative step (eps) of every format; lesson 01."""
    rows = []
    for fmt in FORMATS:
        if fmt in FLOAT_FORMATS:
            exponent_bits, mantissa_bits, dtype, _ = FLOAT_FORMATS[fmt]
            info = torch.finfo(dtype)
            bias = 2 ** (exponent_bits - 1) - 1
            rows.append({"format": fmt, "bits": bits_of(fmt), "exponent_bits": exponent_bits,
                         "mantissa_bits": mantissa_bits, "max": float(info.max),
                         "smallest_normal": float(info.smallest_normal),
                         "smallest_subnormal": 2.0 ** (1 - bias - mantissa_bits),
                         "eps": float(info.eps),
                         "decimal_digits": round((mantissa_bits + 1) * math.log10(2), 1)})
        else:
            bits, signed = INT_FORMATS[fmt]
            qmin, qmax = quant.integer_range(bits, signed=signed)
            rows.append({"format": fmt, "bits": bits, "exponent_bits": 0, "mantissa_bits": None,
                         "min": qmin, "max": qmax, "levels": qmax - qmin + 1})
    return rows


def memory_bytes(n_params: int, fmt: str) -> int:
    """Bytes to store ``n_params`` values in a format, packed, rounded up; lesson 01."""
    if not isinstance(n_params, (int, np.integer)) or n_params < 0:
        raise ValueError(f"n_params must be a non-negative integer, got {n_params!r}")
    return (int(n_params) * bits_of(fmt) + 7) // 8


def memory_table(n_params: int, formats: tuple[str, ...] = ("fp32", "fp16", "bf16",
                 "fp8_e4m3", "int8", "int4")) -> dict[str, int]:
    """Bytes per format for a parameter count: the floor of each model file; lesson 01."""
    return {fmt: memory_bytes(n_params, fmt) for fmt in formats}


def arithmetic_intensity(batch: int, k: int, n: int, weight_bytes: float,
                         act_bytes: float = 4.0) -> float:
    """FLOPs per byte moved by a Linear layer (batch x k input, n x k weight); lesson 01.

    2·batch·k·n FLOPs (a multiply and an add per weight per row), over the bytes of the
    weight, the input and the output, each read or written once.
    """
    if min(batch, k, n) < 1 or weight_bytes <= 0 or act_bytes <= 0:
        raise ValueError("batch, k and n must be >= 1 and the byte sizes positive")
    flops = 2 * batch * k * n
    moved = n * k * weight_bytes + batch * k * act_bytes + batch * n * act_bytes
    return flops / moved


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; the course's formats are {list(FORMATS)}")


def _float_format(fmt: str) -> tuple:
    _check_format(fmt)
    if fmt not in FLOAT_FORMATS:
        raise ValueError(f"{fmt} is an integer format, not a float: it has no bit fields or "
                         "cast of its own; quantize with helpers.quant (lesson 02)")
    return FLOAT_FORMATS[fmt]
