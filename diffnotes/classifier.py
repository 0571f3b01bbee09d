r"""A noise-conditional image classifier :math:`p_\phi(y \mid x_t, t)` for classifier guidance.

Classifier guidance (Dhariwal & Nichol 2021, sec. 4) needs :math:`\nabla_{x_t}\log p(y\mid x_t)`
at every noise level the sampler visits, so the classifier is trained on noisy images
:math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon` with :math:`t` drawn
uniformly, and it is told :math:`t` (a sinusoidal embedding added to every block, as in the
U-Net). It is kept small enough to train on a 2-core CPU in a few minutes
(``scripts/guidance/train_classifier.py``); its card is ``diffnotes/pretrained/CLASSIFIER_CARD.md``.

=======================  ==================================================  =================
code                     symbol                                              meaning
=======================  ==================================================  =================
``logits``               :math:`f_\phi(x_t, t) \in \mathbb{R}^{K}`           unnormalised class scores
``log_prob``             :math:`\log p_\phi(y \mid x_t, t)`                  log-softmax of the logits
``grad_log_prob``        :math:`\nabla_{x_t}\log p_\phi(y \mid x_t, t)`      what guidance adds to the score
=======================  ==================================================  =================

Chapter 8.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_int, check_range
from ._util import batch_t
from .checkpoints import PRETRAINED_DIR, read_safetensors, write_json, write_safetensors
from .forward import q_sample
from .unet import timestep_embedding

__all__ = ["NoisyClassifier", "ClassifierConfig", "train_classifier", "accuracy_by_t", "save_classifier",
           "load_classifier", "CLASSIFIER_NAME"]

#: The shipped classifier's file stem in ``diffnotes/pretrained/``.
CLASSIFIER_NAME = "cifar10-classifier"


class _Block(nn.Module):
    """conv -> GroupNorm -> + time embedding -> SiLU, twice, then a 2x2 average pool."""

    def __init__(self, c_in: int, c_out: int, t_dim: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.t_proj = nn.Linear(t_dim, c_out)

    def forward(self, x, temb):
        h = F.silu(self.norm1(self.conv1(x)) + self.t_proj(temb)[:, :, None, None])
        h = F.silu(self.norm2(self.conv2(h)))
        return F.avg_pool2d(h, 2)


class NoisyClassifier(nn.Module):
    r"""Logits :math:`f_\phi(x_t, t)` of a small CNN told the timestep; ``forward(x_t, t) -> [B, K]``.

    Three blocks of widths ``ch * (1, 2, 4)`` at 32, 16 and 8 pixels, global average pooling and
    a linear layer. ``t`` is the schedule's code index (0..T-1), a LongTensor ``[B]`` or a number.
    Chapter 8.
    """

    def __init__(self, num_classes: int = 10, ch: int = 16, in_channels: int = 3, groups: int = 8):
        super().__init__()
        self.num_classes, self.ch = check_int("num_classes", num_classes, 2), check_int("ch", ch, groups)
        t_dim = 4 * ch
        self.temb = nn.Sequential(nn.Linear(ch, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        widths = (ch, 2 * ch, 4 * ch)
        self.blocks = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.blocks.append(_Block(c, w, t_dim, groups))
            c = w
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        t = batch_t(t, x)
        temb = self.temb(timestep_embedding(t, self.ch).to(x.dtype))
        h = x
        for block in self.blocks:
            h = block(h, temb)
        return self.head(h.mean((2, 3)))

    def log_prob(self, x_t: torch.Tensor, t, y) -> torch.Tensor:
        r""":math:`\log p_\phi(y \mid x_t, t)` = log-softmax of the logits at label ``y``; shape ``[B]``."""
        y = torch.as_tensor(y, device=x_t.device).long().expand(x_t.shape[0])
        return F.log_softmax(self(x_t, t), dim=1).gather(1, y[:, None])[:, 0]

    def grad_log_prob(self, x_t: torch.Tensor, t, y) -> torch.Tensor:
        r""":math:`\nabla_{x_t}\log p_\phi(y \mid x_t, t)` by autograd, the shape of ``x_t``.

        The term classifier guidance adds to the unconditional score (Dhariwal & Nichol 2021,
        eq. 10 and Algorithm 1). Chapter 8.
        """
        dtype = self.head.weight.dtype
        with torch.enable_grad():
            x = x_t.detach().to(dtype).requires_grad_(True)
            (g,) = torch.autograd.grad(self.log_prob(x, t, y).sum(), x)
        return g.to(x_t.dtype)


@dataclass
class ClassifierConfig:
    """Training settings of :func:`train_classifier` (saved beside the weights)."""

    ch: int = 16
    steps: int = 1200
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    flip: bool = True
    max_seconds: float = 2400.0


def train_classifier(images: torch.Tensor, labels: torch.Tensor, schedule, config: ClassifierConfig | None = None,
                     *, model: NoisyClassifier | None = None, log=print, log_every: int = 200):
    r"""Train a :class:`NoisyClassifier` by cross-entropy on :math:`(x_t, t, y)`, t uniform in 0..T-1.

    .. math:: \min_\phi\ \mathbb{E}_{x_0, y, t, \epsilon}\big[-\log p_\phi(y \mid
              \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon,\ t)\big]

    Dhariwal & Nichol 2021, sec. 4 (a classifier trained on noisy images). ``images`` are uint8
    ``[N, 3, 32, 32]``; training stops after ``config.steps`` steps or ``config.max_seconds``.
    AdamW with a cosine learning-rate decay; ``model`` continues training a given classifier
    (default: a fresh one of width ``config.ch``). Returns ``(model, history)`` where ``history`` is a
    list of ``{"step", "loss", "acc", "seconds"}`` (running means over ``log_every`` steps).
    """
    cfg = config or ClassifierConfig()
    check_int("steps", cfg.steps, 1)
    check_range("lr", cfg.lr, 0.0, None, low_open=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = NoisyClassifier(ch=cfg.ch) if model is None else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ab = schedule.alpha_bar.float()
    images, labels = torch.as_tensor(images), torch.as_tensor(labels).long()
    history, run_loss, run_acc, n_run, start = [], 0.0, 0.0, 0, time.time()
    model.train()
    for step in range(cfg.steps):
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, images.shape[0], (cfg.batch_size,), generator=gen)
        x0 = images[idx].float() / 127.5 - 1
        if cfg.flip:
            flip = torch.rand(cfg.batch_size, generator=gen) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
        t = torch.randint(0, schedule.T, (cfg.batch_size,), generator=gen)
        x_t = q_sample(x0, ab[t], generator=gen)
        logits = model(x_t, t)
        loss = F.cross_entropy(logits, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run_loss += loss.item()
        run_acc += (logits.argmax(1) == labels[idx]).float().mean().item()
        n_run += 1
        seconds = time.time() - start
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps or seconds > cfg.max_seconds:
            history.append(dict(step=step + 1, loss=run_loss / n_run, acc=run_acc / n_run, seconds=round(seconds, 1)))
            log(f"step {step + 1}: loss {run_loss / n_run:.4f}, train acc {run_acc / n_run:.3f}, {seconds:.0f} s")
            run_loss, run_acc, n_run = 0.0, 0.0, 0
        if seconds > cfg.max_seconds:
            break
    model.eval()
    return model, history


@torch.no_grad()
def accuracy_by_t(model: NoisyClassifier, images: torch.Tensor, labels: torch.Tensor, schedule, ts,
                  *, seed: int = 0, batch_size: int = 500) -> list[dict]:
    r"""Top-1 accuracy of ``model`` on :math:`x_t` made from ``images`` at each code index in ``ts``.

    Returns ``[{"t": t, "acc": a, "se": sqrt(a(1-a)/n), "n": n}, ...]`` (``t`` = code index 0..T-1).
    The noise comes from ``seed`` so two calls agree. Chapter 8.
    """
    x0_all = torch.as_tensor(images).float() / 127.5 - 1 if images.dtype == torch.uint8 else images.float()
    labels = torch.as_tensor(labels).long()
    out = []
    for t in ts:
        t = check_int("t", t, 0, schedule.T - 1)
        gen = torch.Generator().manual_seed(seed + t)
        correct = 0
        for i in range(0, x0_all.shape[0], batch_size):
            x0 = x0_all[i:i + batch_size]
            x_t = q_sample(x0, float(schedule.alpha_bar[t]), generator=gen)
            correct += int((model(x_t, t).argmax(1) == labels[i:i + batch_size]).sum())
        n = x0_all.shape[0]
        acc = correct / n
        out.append(dict(t=t, acc=acc, se=math.sqrt(max(acc * (1 - acc), 1e-12) / n), n=n))
    return out


def save_classifier(model: NoisyClassifier, folder, name: str = CLASSIFIER_NAME, **meta) -> Path:
    """Write ``<name>.safetensors`` (float32 weights) and ``<name>.json`` (``ch``, ``num_classes``, ``meta``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / f"{name}.safetensors", model.state_dict())
    write_json(folder / f"{name}.json", dict(ch=model.ch, num_classes=model.num_classes, **meta))
    return folder / f"{name}.safetensors"


def load_classifier(name_or_path=CLASSIFIER_NAME) -> NoisyClassifier:
    """The shipped noise-conditional classifier (or one saved by :func:`save_classifier`), eval mode.

    ``name_or_path``: a name in ``diffnotes/pretrained/`` or a path to a ``.safetensors`` file with
    its ``.json`` beside it. The json's ``meta`` (training config, accuracy by t) is attached as
    ``model.meta``.
    """
    p = Path(name_or_path)
    if p.suffix != ".safetensors":
        p = PRETRAINED_DIR / f"{name_or_path}.safetensors"
    if not p.is_file():
        raise FileNotFoundError(f"no classifier weights at {p}; train one with scripts/guidance/train_classifier.py")
    spec = json.loads(p.with_suffix(".json").read_text())
    model = NoisyClassifier(num_classes=spec["num_classes"], ch=spec["ch"])
    model.load_state_dict(read_safetensors(p))
    model.meta = {k: v for k, v in spec.items() if k not in ("ch", "num_classes")}
    return model.eval()


def config_dict(cfg: ClassifierConfig) -> dict:
    """The config as a plain dict (for json)."""
    return asdict(cfg)
