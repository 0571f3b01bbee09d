"""Small tensor helpers shared by every module (not part of the public API)."""
from __future__ import annotations

import torch


def as_tensor_like(c, x: torch.Tensor) -> torch.Tensor:
    """Return ``c`` as a tensor with the dtype and device of ``x``."""
    if isinstance(c, torch.Tensor):
        return c.to(device=x.device, dtype=x.dtype)
    return torch.as_tensor(c, dtype=x.dtype, device=x.device)


def append_dims(c, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or per-sample coefficient ``c`` (shape ``[]`` or ``[B]``)
    against ``x`` of shape ``[B, ...]`` by appending singleton dimensions.

    The result has the dtype and device of ``x``.
    """
    c = as_tensor_like(c, x)
    if c.ndim == 0:
        return c
    if c.ndim == 1 and x.ndim >= 1 and c.shape[0] in (1, x.shape[0]):
        return c.reshape(c.shape + (1,) * (x.ndim - 1))
    if c.shape == x.shape:
        return c
    raise ValueError(
        f"coefficient of shape {tuple(c.shape)} cannot be broadcast against x of shape "
        f"{tuple(x.shape)}; pass a scalar, a tensor of shape [B] with B={x.shape[0] if x.ndim else 1}, "
        f"or a tensor shaped like x"
    )


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator``.

    The noise is drawn on the generator's device and moved to ``x``'s device, so a CPU
    generator gives the same numbers whatever device ``x`` lives on.
    """
    gen_device = generator.device if generator is not None else x.device
    z = torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype)
    return z.to(x.device)


def batch_t(t, x: torch.Tensor) -> torch.Tensor:
    """A timestep (int or 0-d tensor) repeated to a ``LongTensor`` of shape ``[B]``."""
    t = torch.as_tensor(t, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    return t.to(torch.long)
