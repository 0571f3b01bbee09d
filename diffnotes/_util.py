"""Small tensor helpers shared by every module (not part of the public API)."""
from __future__ import annotations

import contextlib
import functools
import os
import uuid
from pathlib import Path

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


def randn_like(x: torch.Tensor, generator=None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator``.

    ``generator`` is a ``torch.Generator``, ``None`` (the global one) or a
    :class:`PerSampleGenerator` (row k of the noise from stream k).

    The noise is drawn on the generator's device and moved to ``x``'s device, so a CPU
    generator gives the same numbers whatever device ``x`` lives on.
    """
    if isinstance(generator, PerSampleGenerator):
        return generator.randn_like(x)
    gen_device = generator.device if generator is not None else x.device
    z = torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype)
    return z.to(x.device)


def batch_t(t, x: torch.Tensor) -> torch.Tensor:
    """A timestep (int or 0-d tensor) repeated to a ``LongTensor`` of shape ``[B]``."""
    t = torch.as_tensor(t, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    return t.to(torch.long)


class PerSampleGenerator:
    r"""One CPU ``torch.Generator`` per image of a batch: row k of every noise draw uses stream k.

    ``PerSampleGenerator(seeds)`` seeds generator k with ``seeds[k]``. :meth:`randn_like`
    returns :math:`z` with :math:`z_k \sim N(0, I)` drawn from generator k alone, so an image's
    noise does not depend on which other images share its batch. Any sampler accepts it as its ``generator``:
    :func:`randn_like` hands the draw to it (used by ``python -m diffnotes sample``).
    The count of draws is kept in :attr:`draws`.
    """

    def __init__(self, seeds):
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("seeds must hold at least one seed, got an empty sequence")
        if min(seeds) < 0 or max(seeds) >= 2**63:
            raise ValueError(f"seeds must lie in [0, 2**63 - 1], got min {min(seeds)} and max {max(seeds)}")
        self.seeds = seeds
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.draws = 0

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape, *, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """Noise of shape ``[len(self), *shape]``: row k from generator k (drawn on the CPU, then moved)."""
        z = torch.stack([torch.randn(tuple(shape), generator=g, dtype=dtype) for g in self.generators])
        self.draws += 1
        return z.to(device)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        """Noise shaped like ``x`` ``[B, ...]`` with ``B == len(self)``, in ``x``'s dtype and device."""
        if x.ndim < 1 or x.shape[0] != len(self):
            raise ValueError(f"x must have a batch of {len(self)} (one row per generator), got shape {tuple(x.shape)}")
        return self.randn(x.shape[1:], dtype=x.dtype, device=x.device)


def atomic_write(path, write) -> Path:
    """Write a file by calling ``write(f)`` on a temporary file in the same folder, then rename.

    Readers see either the old file or the complete new one, never a partial file; on any
    error (or KeyboardInterrupt) the temporary file is removed and the old file is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name in the same folder (so os.replace is atomic); "xb" honours the umask
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


class CountingModel:
    """Wrap ``model`` and count its calls (the number of function evaluations, NFE).

    ``counter = CountingModel(model)``; ``counter(x, t)`` returns ``model(x, t)`` and adds one to
    ``counter.calls``; each call is one batched network evaluation. Chapter 5.
    """

    def __init__(self, model):
        if not callable(model):
            raise ValueError(f"model must be callable as model(x_t, t), got {type(model).__name__}")
        self.model = model
        self.calls = 0

    def __call__(self, x, t):
        self.calls += 1
        return self.model(x, t)


@functools.lru_cache(maxsize=None)
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), so that bf16
    autocast is faster than float32 there. Elsewhere autocast would emulate bf16 and be slower."""
    flags = ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line
                    break
    if flags:
        return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))
    mkldnn = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    with contextlib.suppress(Exception):
        return bool(mkldnn()) if mkldnn is not None else False
    return False


def use_bf16(device, requested: bool = True) -> bool:
    """bf16 autocast and channels-last are used when ``requested`` and the device runs them fast:
    any CUDA device, or a CPU for which :func:`cpu_has_bf16` is true."""
    device = torch.device(device)
    if not requested:
        return False
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())


def steps(n: int, progress: bool, desc: str):
    """``range(n)``, with a tqdm progress bar named ``desc`` when ``progress`` (every sampler's loop)."""
    if not progress:
        return range(n)
    from tqdm.auto import tqdm

    return tqdm(range(n), desc=desc, total=n)


def call_at_time(model, x: torch.Tensor, t: float, *, where: str, what: str) -> torch.Tensor:
    """``model(x, t)`` for a continuous-time model, ``t`` a float tensor ``[B]`` on ``x``'s device; the
    output must be a finite tensor of ``x``'s shape (``what`` names it in the error, ``where`` the step)."""
    t_b = torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
    out = model(x, t_b)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model output at {where} must be a tensor of shape {tuple(x.shape)}, got {shape}")
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"model output ({what}) at {where} contains NaN or inf")
    return out.to(x.dtype)


# the attributes a loaded model carries (the trained-model contract, diffnotes.checkpoints): what a
# sampler reads from ``model`` besides calling it
TRAINED_MODEL_ATTRS = ("schedule", "config", "arch", "num_classes")


def carry_trained_attrs(source, wrapper):
    """Give ``wrapper`` (a module that calls ``source``) the trained-model attributes of ``source``
    (:data:`TRAINED_MODEL_ATTRS`; ``num_classes`` 0 when it has none), set without registering them as
    submodules. Returns ``wrapper``."""
    for name in TRAINED_MODEL_ATTRS:
        if hasattr(source, name):
            object.__setattr__(wrapper, name, getattr(source, name))
    if not hasattr(source, "num_classes"):
        object.__setattr__(wrapper, "num_classes", 0)
    return wrapper
