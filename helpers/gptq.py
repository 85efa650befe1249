"""GPTQ (Frantar et al. 2022) from first principles: lesson 15.

Quantize a Linear layer's weight one input column at a time and push each column's rounding
error onto the columns not yet quantized, weighted by the inverse Hessian of the layer's
squared output error, H = 2 X^T X / n (X: calibration inputs). The paper's three engineering
steps are here: damping (add a fraction of mean(diag H) so H is safely invertible), the
upper Cholesky factor of H^-1 (numerically stable and the same update as re-inverting after
every column), and lazy batches (update the far columns once per block of columns).
"""

from __future__ import annotations

import time

import torch

from helpers import llm_quant as lq
from helpers.llm_model import GroupStats, InputGroup, modules


def hessian(x: torch.Tensor) -> torch.Tensor:
    """GPTQ's layer Hessian H = 2 X^T X / n for activations (tokens, in_features); lesson 15."""
    x = x.reshape(-1, x.shape[-1]).to(torch.float64)
    return 2.0 * x.T @ x / x.shape[0]


def inverse_hessian_factor(h: torch.Tensor, damp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """(upper Cholesky factor of (H + damp·mean(diag H)·I)^-1, dead-input mask); lesson 15."""
    if not 0 <= damp < 1:
        raise ValueError(f"damp is a fraction of mean(diag H), between 0 and 1; got {damp}")
    H = h.detach().to(torch.float64).clone()
    dead = torch.diag(H) == 0  # an input channel that never fired carries no information
    H[dead, dead] = 1.0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(H.shape[0], dtype=H.dtype)
    try:
        factor = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    except torch.linalg.LinAlgError as err:
        raise ValueError(f"H + damping is not positive definite ({err}); raise damp or use more "
                         "calibration tokens") from None
    return factor, dead


def column_update(w: torch.Tensor, hinv: torch.Tensor, i: int, q: torch.Tensor) -> torch.Tensor:
    """One GPTQ step: column i becomes q, later columns absorb its error via row i of chol(H^-1); lesson 15.

    ``hinv`` is the upper Cholesky factor of H^-1 for the columns of ``w`` (returns a new tensor).
    """
    err = (w[:, i] - q) / hinv[i, i]
    out = w.clone()
    out[:, i:] -= err[:, None] * hinv[i, i:][None, :]
    return out


def gptq(w: torch.Tensor, h: torch.Tensor, group_size: int | None = 128, bits: int = 4,
         symmetric: bool = True, damp: float = 0.01, block_size: int = 128) -> torch.Tensor:
    """GPTQ-quantized (dequantized) copy of ``w`` given its input Hessian ``h``; lesson 15.

    A group's scale is computed from the (already error-updated) weights when the group
    starts, as in the reference implementation; lazy batches of ``block_size`` columns.
    """
    rows, cols = w.shape
    if h.shape != (cols, cols):
        raise ValueError(f"H must be ({cols}, {cols}) for a weight with {cols} input columns, "
                         f"got {tuple(h.shape)}")
    hinv, dead = inverse_hessian_factor(h, damp)
    # Work on W^T, so that each weight column is a contiguous row: about 2x faster on a CPU.
    W = w.detach().to(torch.float64).T.contiguous()
    W[dead] = 0.0
    Q = torch.zeros_like(W)
    if group_size is None:
        scale, zero = lq.group_params(W.T, bits, symmetric)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        W1, err1, hinv1 = W[i1:i2].clone(), torch.zeros(i2 - i1, rows, dtype=W.dtype), hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            if group_size is not None and (i1 + i) % group_size == 0:
                ahead = torch.cat([W1[i:], W[i2:]])[:group_size]
                scale, zero = lq.group_params(ahead.T, bits, symmetric)
            col = W1[i]
            q = lq.fake_quant(col, scale, zero, bits, symmetric)
            Q[i1 + i] = q
            e = (col - q) / hinv1[i, i]
            W1[i:] -= hinv1[i, i:, None] * e[None, :]  # column_update, in place
            err1[i] = e
        W[i2:].addmm_(hinv[i1:i2, i2:].T, err1, alpha=-1)  # the lazy batch update, in place
    return Q.T.to(w.dtype)


def gptq_weights(model, groups: list[InputGroup], stats: dict[str, GroupStats], group_size: int | None = 128,
                 bits: int = 4, symmetric: bool = True, damp: float = 0.01,
                 progress: bool = True) -> tuple[dict[str, torch.Tensor], float]:
    """(GPTQ weights by layer name, seconds) for every group; layers sharing an input share H; lesson 15.

    Stacking the rows of q/k/v (or gate/up) is exact: GPTQ treats every row independently
    given H, so one pass over the columns serves the whole group.
    """
    from tqdm.auto import tqdm

    found = modules(model)
    out: dict[str, torch.Tensor] = {}
    start = time.perf_counter()
    for group in tqdm(groups, desc=f"GPTQ w{bits}", disable=not progress, leave=False):
        weights = [found[n].weight.detach() for n in group.linears]
        stacked = gptq(torch.cat(weights), stats[group.name].hessian, group_size, bits, symmetric, damp)
        parts = torch.split(stacked, [w.shape[0] for w in weights])
        for name, part in zip(group.linears, parts, strict=True):
            out[name] = part.contiguous()
    return out, time.perf_counter() - start
