r"""Noise-prediction networks :math:`\epsilon_\theta(x_t, t)`: the DDPM U-Net and a small MLP.

:class:`UNet` is the network of Ho et al. 2020, appendix B (a PixelCNN++-style U-Net with
Wide-ResNet blocks, GroupNorm, sinusoidal time embedding and self-attention at 16x16).
With :func:`make_unet` ``("ddpm")`` it is the paper's CIFAR-10 model, 35.7M parameters.
:class:`ToyMLP` plays the same role for 2-D toy data.

Both are called as ``model(x_t, t) -> eps_hat``, where ``t`` holds the (0-based, original)
timestep index of each sample, a ``LongTensor`` of shape ``[B]`` (a float tensor or a single
number is accepted too: the time embedding is a smooth function of real ``t``).

Chapters 2 (training a DDPM) and 4 (the U-Net); the toy MLP in chapters 2 and 5.
"""
from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_batch, check_finite, check_int, check_range
from ._util import carry_trained_attrs, use_bf16

__all__ = [
    "timestep_embedding",
    "ResBlock",
    "AttnBlock",
    "Downsample",
    "Upsample",
    "UNet",
    "load_weights",
    "BF16Autocast",
    "fast_inference",
    "ToyMLP",
    "PRESETS",
    "make_unet",
    "count_parameters",
]


# --------------------------------------------------------------------------------------
# time embedding
# --------------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    r"""Sinusoidal embedding of (real or integer) timesteps, shape ``[B] -> [B, dim]``.

    .. math::
        \omega_i = \text{max\_period}^{-i/(h-1)},\ i=0..h-1,\ h=\lfloor \text{dim}/2\rfloor,\qquad
        e(t) = [\sin(t\,\omega_0..\omega_{h-1}),\ \cos(t\,\omega_0..\omega_{h-1})]

    (zero-padded by one column when ``dim`` is odd). Every (sin, cos) pair lies on the unit
    circle, so :math:`e_i^2 + e_{h+i}^2 = 1`.

    Vaswani et al. 2017, sec. 3.5, used for the diffusion time in Ho et al. 2020, appendix B.
    Chapter 4.

    Parameters
    ----------
    t : torch.Tensor, shape [B]
        Timesteps (any dtype); the embedding is float32 (float64 if ``t`` is float64).
    dim : int
        Embedding width, at least 2.
    """
    dim = check_int("dim", dim, 2)
    check_range("max_period", max_period, 1.0, None, low_open=True)
    if t.ndim != 1:
        raise ValueError(f"t must have shape [B], got shape {tuple(t.shape)}")
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    half = dim // 2
    # half == 1 would divide by zero below; a single frequency of 1 is the natural limit
    denom = max(half - 1, 1)
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=dtype, device=t.device) / denom
    )
    args = t.to(dtype)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _prepare_t(t, x: torch.Tensor) -> torch.Tensor:
    """``t`` as a 1-D tensor of length ``B`` on ``x``'s device (a number is repeated)."""
    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(t)
    t = t.to(x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(
            f"t must be a number or a tensor of shape [B] with B={x.shape[0]} (the batch size of x), "
            f"got shape {tuple(t.shape)}"
        )
    if t.dtype.is_floating_point:
        check_finite("t", t)
    elif t.dtype == torch.bool or t.dtype.is_complex:
        raise ValueError(f"t must hold integer or real timesteps, got dtype {t.dtype}")
    return t


# --------------------------------------------------------------------------------------
# initialisation (the paper's code: Xavier-uniform ("fan_avg") weights, zero biases,
# and zero weights for the last layer of every residual branch and for the output conv)
# --------------------------------------------------------------------------------------
def _init(module: nn.Module, scale: float = 1.0) -> nn.Module:
    if scale == 0.0:
        nn.init.zeros_(module.weight)
    else:
        nn.init.xavier_uniform_(module.weight, gain=math.sqrt(scale))
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


def _conv3(c_in: int, c_out: int, *, stride: int = 1, scale: float = 1.0) -> nn.Conv2d:
    return _init(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), scale)


def _norm(c: int, num_groups: int) -> nn.GroupNorm:
    if c % num_groups:
        raise ValueError(f"num_groups={num_groups} must divide every channel count; {c} is not divisible")
    return nn.GroupNorm(num_groups, c, eps=1e-6)


# --------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------
class ResBlock(nn.Module):
    r"""Wide-ResNet block with the time embedding added after the first conv.

    .. math:: h = \mathrm{conv}(\mathrm{SiLU}(\mathrm{GN}(x))) + W\,\mathrm{SiLU}(e_t),\quad
              y = \mathrm{skip}(x) + \mathrm{conv}(\mathrm{drop}(\mathrm{SiLU}(\mathrm{GN}(h))))

    ``skip`` is a 1x1 conv when the channel count changes, the identity otherwise.
    Ho et al. 2020, appendix B (Zagoruyko & Komodakis 2016). Chapter 4.
    """

    def __init__(self, c_in: int, c_out: int, temb_dim: int, dropout: float, num_groups: int):
        super().__init__()
        self.norm1 = _norm(c_in, num_groups)
        self.conv1 = _conv3(c_in, c_out)
        self.temb_proj = _init(nn.Linear(temb_dim, c_out))
        self.norm2 = _norm(c_out, num_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _conv3(c_out, c_out, scale=0.0)
        self.skip = _init(nn.Conv2d(c_in, c_out, 1)) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    r"""Single-head self-attention over the pixels of a feature map, with a residual connection.

    .. math:: y = x + W_o\,\mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{C}}\right)V,\qquad
              (Q, K, V) = W_{qkv}\,\mathrm{GN}(x)

    Ho et al. 2020, appendix B (Wang et al. 2018 non-local block). Chapter 4.
    """

    def __init__(self, c: int, num_groups: int):
        super().__init__()
        self.norm = _norm(c, num_groups)
        self.qkv = _init(nn.Conv2d(c, 3 * c, 1))
        self.proj_out = _init(nn.Conv2d(c, c, 1), scale=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)
        # [B, HW, C] each; one head of width C, so the scale is C^{-1/2}
        h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 conv (Ho et al. 2020, appendix B)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = _conv3(c, c, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour upsampling then a 3x3 conv (Ho et al. 2020, appendix B)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = _conv3(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


# --------------------------------------------------------------------------------------
# the U-Net
# --------------------------------------------------------------------------------------
class UNet(nn.Module):
    r"""The DDPM noise-prediction U-Net :math:`\epsilon_\theta(x_t, t)`.

    Layout (Ho et al. 2020, appendix B; level ``i`` works at resolution ``image_size / 2**i``
    with ``ch * ch_mult[i]`` channels):

    * time: sinusoidal embedding of width ``ch`` -> Linear -> SiLU -> Linear, width ``4 ch``;
    * ``conv_in`` (3x3) to ``ch`` channels;
    * down path: per level ``num_res_blocks`` residual blocks (each followed by self-attention
      at the resolutions in ``attn_resolutions``), then a stride-2 conv except at the last
      level; every output is kept as a skip connection;
    * middle: residual block, attention, residual block;
    * up path: per level ``num_res_blocks + 1`` residual blocks, each taking the concatenation
      with one skip connection (popped in reverse order), attention as on the way down, then
      nearest-neighbour x2 + conv except at the top level;
    * GroupNorm, SiLU, ``conv_out`` (3x3, zero-initialised) back to ``out_channels``.

    Parameters
    ----------
    in_channels, out_channels : int
        Image channels (``out_channels`` defaults to ``in_channels``: the net predicts eps).
    ch : int
        Base channel count (128 in the paper).
    ch_mult : tuple of int
        Channel multiplier per resolution level ((1, 2, 2, 2) for 32x32 in the paper).
    num_res_blocks : int
        Residual blocks per level on the way down (2 in the paper).
    attn_resolutions : tuple of int
        Feature-map sizes, for an ``image_size`` input, that get self-attention ((16,)).
    dropout : float
        Dropout rate inside the residual blocks (0.1 for CIFAR-10).
    image_size : int
        The resolution the network is built for; it only decides which levels get
        attention. Inputs of any size divisible by ``2**(len(ch_mult)-1)`` are accepted.
    num_groups : int
        GroupNorm groups (32 in the paper); must divide every channel count.
    num_classes : int
        0 (default): unconditional, ``forward(x, t)``. ``K > 0``: the network also takes an
        optional class label ``y`` in ``0..K-1``, or ``K`` = :attr:`null_class` for "no label",
        whose learned embedding (width ``4 ch``) is added to the time embedding. One network
        is then both conditional and unconditional, as classifier-free guidance needs (Ho &
        Salimans 2022). The embedding table starts at zero, so before any conditional
        training the network computes the same function for every label: an unconditional
        checkpoint loaded into it (:func:`load_weights`) is unchanged.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,
        ch: int = 128,
        ch_mult: tuple = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attn_resolutions: tuple = (16,),
        dropout: float = 0.1,
        image_size: int = 32,
        num_groups: int = 32,
        num_classes: int = 0,
    ):
        super().__init__()
        in_channels = check_int("in_channels", in_channels, 1)
        out_channels = in_channels if out_channels is None else check_int("out_channels", out_channels, 1)
        ch = check_int("ch", ch, 1)
        ch_mult = tuple(int(check_int("ch_mult entries", m, 1)) for m in ch_mult)
        if not ch_mult:
            raise ValueError("ch_mult must hold at least one multiplier, got ()")
        num_res_blocks = check_int("num_res_blocks", num_res_blocks, 1)
        attn_resolutions = tuple(int(check_int("attn_resolutions entries", r, 1)) for r in attn_resolutions)
        check_range("dropout", dropout, 0.0, 1.0, high_open=True)
        image_size = check_int("image_size", image_size, 1)
        num_groups = check_int("num_groups", num_groups, 1)
        num_classes = check_int("num_classes", num_classes, 0)
        levels = len(ch_mult)
        if image_size % 2 ** (levels - 1):
            raise ValueError(
                f"image_size={image_size} must be divisible by 2**(len(ch_mult)-1) = {2 ** (levels - 1)}"
            )
        self.arch = dict(
            in_channels=in_channels, out_channels=out_channels, ch=ch, ch_mult=ch_mult,
            num_res_blocks=num_res_blocks, attn_resolutions=attn_resolutions, dropout=float(dropout),
            image_size=image_size, num_groups=num_groups,
        )
        if num_classes:  # recorded only when used, so unconditional configs read as before
            self.arch["num_classes"] = num_classes
        self.num_classes = num_classes
        self.in_channels, self.out_channels = in_channels, out_channels
        self.ch, self.levels = ch, levels
        temb_dim = 4 * ch
        attn_level = [image_size // 2**i in attn_resolutions for i in range(levels)]

        self.temb = nn.Sequential(_init(nn.Linear(ch, temb_dim)), nn.SiLU(), _init(nn.Linear(temb_dim, temb_dim)))
        self.conv_in = _conv3(in_channels, ch)
        if num_classes:
            # rows 0..K-1: the classes; row K: "no label". Zero at the start (see the docstring).
            self.class_emb = nn.Embedding(num_classes + 1, temb_dim)
            nn.init.zeros_(self.class_emb.weight)

        # down path; skip_ch records the channels of every kept activation
        self.down = nn.ModuleList()
        skip_ch = [ch]
        c = ch
        for i, m in enumerate(ch_mult):
            level = nn.Module()
            level.res = nn.ModuleList()
            level.attn = nn.ModuleList()
            for _ in range(num_res_blocks):
                level.res.append(ResBlock(c, ch * m, temb_dim, dropout, num_groups))
                c = ch * m
                level.attn.append(AttnBlock(c, num_groups) if attn_level[i] else nn.Identity())
                skip_ch.append(c)
            level.downsample = Downsample(c) if i != levels - 1 else nn.Identity()
            if i != levels - 1:
                skip_ch.append(c)
            self.down.append(level)

        self.mid_res1 = ResBlock(c, c, temb_dim, dropout, num_groups)
        self.mid_attn = AttnBlock(c, num_groups)
        self.mid_res2 = ResBlock(c, c, temb_dim, dropout, num_groups)

        # up path, stored top level first (like self.down) but run from the bottom
        up = []
        for i, m in reversed(list(enumerate(ch_mult))):
            level = nn.Module()
            level.res = nn.ModuleList()
            level.attn = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                level.res.append(ResBlock(c + skip_ch.pop(), ch * m, temb_dim, dropout, num_groups))
                c = ch * m
                level.attn.append(AttnBlock(c, num_groups) if attn_level[i] else nn.Identity())
            level.upsample = Upsample(c) if i != 0 else nn.Identity()
            up.append(level)
        assert not skip_ch
        self.up = nn.ModuleList(reversed(up))

        self.norm_out = _norm(c, num_groups)
        self.conv_out = _conv3(c, out_channels, scale=0.0)

    def _check(self, x: torch.Tensor) -> None:
        check_batch("x", x, min_ndim=4)
        if x.ndim != 4:
            raise ValueError(f"x must have shape [B, C, H, W], got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} channels (x.shape[1]), got {x.shape[1]}")
        div = 2 ** (self.levels - 1)
        if x.shape[2] % div or x.shape[3] % div:
            raise ValueError(
                f"x's height and width must be divisible by 2**(levels-1) = {div} for this {self.levels}-level "
                f"U-Net, got {x.shape[2]}x{x.shape[3]}"
            )

    @property
    def null_class(self) -> int:
        """The label that means "no label" (``num_classes``); only for a class-conditional network."""
        if not self.num_classes:
            raise ValueError("this U-Net is unconditional (num_classes=0): it has no labels")
        return self.num_classes

    def _labels(self, y, x: torch.Tensor) -> torch.Tensor:
        """``y`` as a 1-D int64 tensor of length ``B`` on ``x``'s device (a number is repeated)."""
        if not self.num_classes:
            raise ValueError("this U-Net is unconditional (num_classes=0); call it without y, or build it "
                             "with num_classes > 0")
        y = torch.as_tensor(y, device=x.device)
        if y.ndim == 0:
            y = y.expand(x.shape[0])
        if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValueError(f"y must be an integer label or an integer tensor of shape [B] with B={x.shape[0]}, "
                             f"got {y.dtype} of shape {tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > self.num_classes):
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1}, or {self.num_classes} for "
                             f"'no label'; got values from {int(y.min())} to {int(y.max())}")
        return y.long()

    def forward(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        """Predicted noise for ``x`` ([B, C, H, W]) at timesteps ``t`` ([B] or a number), given the
        class labels ``y`` ([B] or a number; ``None``: no label) of a class-conditional network."""
        self._check(x)
        t = _prepare_t(t, x)
        temb = self.temb(timestep_embedding(t, self.ch).to(x.dtype))
        if self.num_classes:
            y = torch.full_like(t, self.null_class, dtype=torch.long) if y is None else self._labels(y, x)
            temb = temb + self.class_emb(y).to(temb.dtype)
        elif y is not None:
            self._labels(y, x)  # raises: an unconditional network takes no label

        hs = [self.conv_in(x)]
        for level in self.down:
            for res, attn in zip(level.res, level.attn):
                hs.append(attn(res(hs[-1], temb)))
            if not isinstance(level.downsample, nn.Identity):
                hs.append(level.downsample(hs[-1]))

        h = hs[-1]
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, temb)), temb)

        for level in reversed(self.up):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(torch.cat([h, hs.pop()], dim=1), temb))
            h = level.upsample(h)

        return self.conv_out(F.silu(self.norm_out(h)))


def load_weights(model: nn.Module, state: dict) -> list[str]:
    """Load ``state`` into ``model``, where the network may have gained a class embedding.

    Every key of ``model`` must be in ``state`` with its shape, except ``class_emb.weight``
    of a class-conditional :class:`UNet`: loading an unconditional checkpoint into it keeps
    that table as it is (zero when new), so the network computes the checkpoint's function
    for every label. Returns the keys that were kept (``[]`` or ``["class_emb.weight"]``).
    Raises ``ValueError`` naming the missing, unexpected or mis-shaped keys otherwise.
    """
    own = model.state_dict()
    optional = {"class_emb.weight"} & set(own)
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        raise ValueError(
            "the weights do not fit this network: "
            + "; ".join(f"{what} {keys[:5]}{' ...' if len(keys) > 5 else ''}" for what, keys in (
                ("missing", missing), ("unexpected", unexpected),
                ("different shapes for", shapes)) if keys)
            + " (was it trained with another architecture? compare the checkpoint's config.json)"
        )
    kept = sorted(set(own) - set(state))
    model.load_state_dict({**{k: own[k] for k in kept}, **state})
    return kept


class BF16Autocast(nn.Module):
    """Runs a network under bfloat16 autocast with channels-last activations, and returns its
    output in the input's dtype: the fast way to evaluate a network on a GPU or on a CPU with
    native bf16 (about 1.7x float32 for the ``cpu`` preset on a 2-core AVX-512 BF16 CPU, ``bench``).

    The wrapped network is ``.inner``; the trained-model attributes (``.schedule``, ``.config``,
    ``.arch``, ``.num_classes``: :data:`diffnotes._util.TRAINED_MODEL_ATTRS`) are passed through. Outputs differ from float32 by bf16 rounding (relative error about 1e-2,
    bounded in ``tests/test_unet.py``).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = model.to(memory_format=torch.channels_last)
        carry_trained_attrs(model, self)

    def forward(self, x: torch.Tensor, t, *args, **kwargs) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            out = self.inner(x.contiguous(memory_format=torch.channels_last), t, *args, **kwargs)
        return out.to(x.dtype).contiguous()


def fast_inference(model: nn.Module, bf16: bool | None = None) -> nn.Module:
    """``model`` wrapped in :class:`BF16Autocast` when ``bf16`` is True, or, when ``bf16`` is None,
    when its device runs bf16 natively (CUDA, or a CPU with AVX-512 BF16 / AMX) and the environment
    variable ``DIFFNOTES_BF16`` is not ``0`` (how CI runs the chapters with the network in float32);
    else ``model``."""
    if isinstance(model, BF16Autocast):
        return model
    device = next(model.parameters()).device
    if bf16 is None:
        bf16 = use_bf16(device) and os.environ.get("DIFFNOTES_BF16", "").strip().lower() not in ("0", "false", "no")
    return BF16Autocast(model) if bf16 else model


# --------------------------------------------------------------------------------------
# presets
# --------------------------------------------------------------------------------------
PRESETS: dict[str, dict] = {
    # trains on a CPU in minutes (the live demo); 0.65M parameters
    "tiny": dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), dropout=0.1, num_groups=8),
    # the shipped CIFAR-10 model (diffnotes.pretrained()), sized to train on a 2-core CPU
    # (about 96 img/s with bf16 in `bench`); class-conditional with a "no label" class; 2.74M parameters
    "cpu": dict(ch=32, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=(8,), dropout=0.0, num_groups=8,
                num_classes=10),
    # a wider network for a GPU; 6.47M parameters, 13 MB in bf16
    "small": dict(ch=64, ch_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1),
    # Ho et al. 2020, appendix B: the CIFAR-10 model, 35.7M parameters
    "ddpm": dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1),
}


def make_unet(preset: str = "small", **overrides) -> UNet:
    """A :class:`UNet` built from ``PRESETS[preset]`` with keyword ``overrides`` (e.g. ``dropout=0.0``).

    Presets: ``"tiny"`` (CPU demos), ``"cpu"`` (the shipped class-conditional model, trained on a
    2-core CPU), ``"small"`` (a wider one for a GPU), ``"ddpm"`` (Ho et al. 2020, appendix B,
    35.7M parameters). Chapter 4.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    kwargs = dict(PRESETS[preset])
    kwargs.update(overrides)
    return UNet(**kwargs)


# --------------------------------------------------------------------------------------
# toy MLP
# --------------------------------------------------------------------------------------
class ToyMLP(nn.Module):
    r"""A small residual MLP :math:`\epsilon_\theta(x_t, t)` for ``D``-dimensional toy data.

    .. math:: h_0 = W_{in}x + \mathrm{MLP}(e(t\cdot s)),\quad h_{k+1} = h_k + W_k\,\mathrm{SiLU}(\mathrm{LN}(h_k)),
              \quad \hat\epsilon = W_{out}\,\mathrm{SiLU}(h_L)

    with :math:`e` the sinusoidal :func:`timestep_embedding` and :math:`s` = ``t_scale``
    (use ``t_scale=1000`` for a continuous ``t`` in [0, 1]). Chapters 2 and 5.

    Parameters
    ----------
    dim : int
        Data dimension D (2 for the toy sets).
    hidden : int
        Width of the hidden layers.
    depth : int
        Number of residual hidden layers.
    temb_dim : int
        Width of the sinusoidal time embedding.
    t_scale : float
        Factor applied to ``t`` before embedding it.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, temb_dim: int = 64, t_scale: float = 1.0):
        super().__init__()
        self.dim = check_int("dim", dim, 1)
        hidden = check_int("hidden", hidden, 1)
        depth = check_int("depth", depth, 0)
        self.temb_dim = check_int("temb_dim", temb_dim, 2)
        check_range("t_scale", t_scale, 0.0, None, low_open=True)
        self.t_scale = float(t_scale)
        self.arch = dict(dim=self.dim, hidden=hidden, depth=depth, temb_dim=self.temb_dim, t_scale=self.t_scale)
        self.inp = nn.Linear(self.dim, hidden)
        self.temb = nn.Sequential(nn.Linear(self.temb_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth)
        )
        self.out = nn.Linear(hidden, self.dim)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        """Predicted noise for ``x`` ([B, D]) at timesteps ``t`` ([B] or a number)."""
        check_batch("x", x, min_ndim=2)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape [B, {self.dim}], got shape {tuple(x.shape)}")
        t = _prepare_t(t, x)
        emb = timestep_embedding(t.to(torch.float64) * self.t_scale, self.temb_dim).to(x.dtype)
        h = self.inp(x) + self.temb(emb)
        for block in self.blocks:
            h = h + block(h)
        return self.out(F.silu(h))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
