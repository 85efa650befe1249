"""GGUF from the inside: the tensor table of a .gguf file and one Q4_1 block by hand: lesson 15.

A GGUF file is a header (key-value metadata: architecture, tokenizer...), a table of tensors
(name, shape, type, offset) and the tensor data. A Q4_1 tensor is stored in blocks of 32
weights along a row, 20 bytes each: fp16 scale d, fp16 minimum m, then 16 bytes of 4-bit
codes q (byte k holds weight k in its low nibble and weight k + 16 in its high nibble);
weight = d * q + m.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

Q4_1_BLOCK = 32
Q4_1_BYTES = 20


@dataclass(frozen=True)
class TensorInfo:
    """One row of a GGUF tensor table; lesson 15."""

    name: str
    type: str
    shape: tuple[int, ...]   # PyTorch order: (rows, columns)
    n_bytes: int

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per weight, scales and minima included."""
        return 8 * self.n_bytes / int(np.prod(self.shape))


def reader(path: str | Path):
    """A ``gguf.GGUFReader`` over the file (memory-mapped, nothing loaded yet); lesson 15."""
    from gguf import GGUFReader

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no GGUF file at {path}")
    return GGUFReader(path)


def tensor_table(gguf_reader) -> list[TensorInfo]:
    """Name, type, shape (rows, columns) and bytes of every tensor in the file; lesson 15."""
    return [TensorInfo(t.name, t.tensor_type.name, tuple(int(d) for d in reversed(t.shape)), int(t.n_bytes))
            for t in gguf_reader.tensors]


def metadata(gguf_reader, key: str):
    """One metadata value (a number or a string) from the GGUF header; lesson 15."""
    field = gguf_reader.fields.get(key)
    if field is None:
        raise KeyError(f"no metadata key {key!r}; the file has e.g. {list(gguf_reader.fields)[:6]}")
    value = field.parts[field.data[0]]
    return bytes(value).decode() if field.types and field.types[0].name == "STRING" else value.item()


def tensor(gguf_reader, name: str):
    """The ReaderTensor called ``name``; lesson 15."""
    for t in gguf_reader.tensors:
        if t.name == name:
            return t
    raise KeyError(f"no tensor {name!r} in the file; e.g. {[t.name for t in gguf_reader.tensors[:4]]}")


def raw_block(gguf_reader, name: str, row: int = 0, block: int = 0) -> bytes:
    """The 20 raw bytes of one Q4_1 block (row, block index along the row); lesson 15."""
    t = tensor(gguf_reader, name)
    if t.tensor_type.name != "Q4_1":
        raise ValueError(f"{name} is {t.tensor_type.name}, not Q4_1")
    data = np.asarray(t.data)  # (rows, blocks_per_row * 20) bytes
    if not (0 <= row < data.shape[0] and 0 <= block < data.shape[1] // Q4_1_BYTES):
        raise IndexError(f"{name} has {data.shape[0]} rows of {data.shape[1] // Q4_1_BYTES} blocks")
    return data[row, block * Q4_1_BYTES:(block + 1) * Q4_1_BYTES].tobytes()


def dequantize_q4_1_block(raw: bytes) -> np.ndarray:
    """32 float32 weights from one 20-byte Q4_1 block: d * q + m; lesson 15."""
    if len(raw) != Q4_1_BYTES:
        raise ValueError(f"a Q4_1 block is {Q4_1_BYTES} bytes, got {len(raw)}")
    d, m = np.frombuffer(raw[:4], dtype=np.float16).astype(np.float32)
    packed = np.frombuffer(raw[4:], dtype=np.uint8)
    q = np.concatenate([packed & 0x0F, packed >> 4]).astype(np.float32)
    return d * q + m


def library_dequantize(gguf_reader, name: str) -> np.ndarray:
    """The gguf package's dequantization of a whole tensor, shape (rows, columns); lesson 15."""
    from gguf import quants

    t = tensor(gguf_reader, name)
    return quants.dequantize(np.asarray(t.data), t.tensor_type)


def hf_name(gguf_name: str) -> str:
    """The transformers parameter name of a Llama GGUF tensor ('blk.3.ffn_up.weight'); lesson 15."""
    parts = gguf_name.split(".")
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
             "ffn_norm": "post_attention_layernorm"}
    if parts[0] != "blk" or parts[2] not in names:
        raise KeyError(f"no transformers name known for {gguf_name!r}")
    return f"model.layers.{parts[1]}.{names[parts[2]]}.{parts[3]}"
