"""Throughput of the U-Net presets: training and sampling images per second on each device.

:func:`bench` measures, :func:`bench_table` prints; ``python -m diffnotes bench`` is the command. A
benchmark prints figures; no test times anything (the figures depend on the machine).
"""
from __future__ import annotations

import sys
import time

import torch

from ._util import use_bf16
from .samplers import sample_ddim
from .schedules import linear_schedule, make_timesteps
from .train import train_step
from .unet import PRESETS, count_parameters, fast_inference, make_unet

__all__ = ["bench", "bench_table", "PRESET_NAMES"]

PRESET_NAMES = tuple(PRESETS)
_BENCH_DEFAULTS = {  # per device type: batch size, timed iterations, warm-up iterations, sampler steps
    "cpu": dict(batch_size=4, steps=2, warmup=1, sample_steps=2),
    "cuda": dict(batch_size=128, steps=20, warmup=5, sample_steps=20),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, iters: int, seconds: float | None) -> tuple[int, float]:
    """Call ``fn`` until ``iters`` calls or ``seconds`` have passed (at least once); (calls, time)."""
    _sync(device)
    t0 = time.perf_counter()
    done = 0
    while done < iters:
        fn()
        done += 1
        if seconds is not None:
            _sync(device)
            if time.perf_counter() - t0 >= seconds:
                break
    _sync(device)
    return done, time.perf_counter() - t0


def bench(presets=PRESET_NAMES, devices=None, *, batch_size: int | None = None, steps: int | None = None,
          warmup: int | None = None, seconds: float | None = 30.0, sample_steps: int | None = None,
          bf16: bool = True, progress: bool = False) -> list[dict]:
    """Training and sampling throughput of each U-Net preset on each device, on random data.

    For each (preset, device): a fresh :func:`diffnotes.unet.make_unet` network and Adam;
    ``warmup`` untimed iterations (kernel selection, allocator, ``cudnn.benchmark``), then
    ``steps`` timed ones, stopping early once ``seconds`` have passed (at least one always runs).

    * training: :func:`diffnotes.train.train_step` on a random batch in [-1, 1];
    * sampling: :func:`diffnotes.samplers.sample_ddim` with ``sample_steps`` steps.

    Each is measured in float32 and, when ``bf16`` and the device runs bf16 natively (CUDA, or a
    CPU with AVX-512 BF16 / AMX: :func:`diffnotes._util.use_bf16`), again with bfloat16
    autocast and channels-last, as :func:`diffnotes.train.train` and ``sample`` use them.

    Defaults of ``batch_size``, ``steps``, ``warmup``, ``sample_steps`` depend on the device
    (:data:`_BENCH_DEFAULTS`: CPU 4, 2, 1, 2 -- a few seconds per preset; CUDA 128, 20, 5, 20).
    Returns one dict per row: ``preset, device, bf16, params, batch_size, train_img_s, sample_img_s``
    (finished images per second), ``nfe_img_s`` (images per second through one network
    evaluation, ``sample_img_s * sample_steps``), ``sample_steps``, and the iteration counts.
    """
    presets = list(presets)
    bad = [p for p in presets if p not in PRESET_NAMES]
    if bad or not presets:
        raise ValueError(f"presets must be a non-empty selection of {PRESET_NAMES}, got {presets}")
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices = [torch.device(d) for d in devices]
    for d in devices:
        if d.type not in _BENCH_DEFAULTS:
            raise ValueError(f"devices must be cpu or cuda, got {d}")
        if d.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda was asked for, but torch.cuda.is_available() is False")
    if seconds is not None and not seconds > 0:
        raise ValueError(f"seconds must be > 0 (or None), got {seconds}")
    schedule = linear_schedule(1000)
    rows = []
    for device in devices:
        d = dict(_BENCH_DEFAULTS[device.type])
        for k, v in (("batch_size", batch_size), ("steps", steps), ("warmup", warmup), ("sample_steps", sample_steps)):
            if v is not None:
                d[k] = v
        for k in ("batch_size", "steps", "sample_steps"):
            if int(d[k]) < 1:
                raise ValueError(f"{k} must be >= 1, got {d[k]}")
        if int(d["warmup"]) < 0:
            raise ValueError(f"warmup must be >= 0, got {d['warmup']}")
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        for preset in presets:
            modes = [False] + ([True] if bf16 and use_bf16(device) else [])
            for fast in modes:
                if progress:
                    print(f"bench: {preset} on {device} in {'bf16' if fast else 'fp32'} ...", file=sys.stderr,
                          flush=True)
                rows.append(_bench_one(preset, device, d, schedule, seconds, fast))
    return rows


def _bench_one(preset: str, device: torch.device, d: dict, schedule, seconds, fast: bool) -> dict:
    """One row of :func:`bench`: ``preset`` on ``device``, in float32 or (``fast``) bf16 autocast +
    channels-last."""
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device.index or 0] if cuda else []):
        torch.manual_seed(0)
        model = make_unet(preset).to(device)
        fmt = torch.channels_last if fast else torch.contiguous_format
        model = model.to(memory_format=fmt)
        gen = torch.Generator(device=device).manual_seed(0)
        B = int(d["batch_size"])
        x_0 = (torch.rand(B, 3, 32, 32, generator=gen, device=device) * 2 - 1).contiguous(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        model.train()

        def one_train_step():
            train_step(model, x_0, schedule, opt, grad_clip=1.0, generator=gen, bf16=fast)

        for _ in range(int(d["warmup"])):
            one_train_step()
        n_train, t_train = _timed(one_train_step, device, int(d["steps"]), seconds)

        model.eval()
        net = fast_inference(model, fast)
        ts = make_timesteps(schedule.T, int(d["sample_steps"]))
        x_T = torch.randn(B, 3, 32, 32, generator=gen, device=device)
        with torch.no_grad():
            t_b = torch.full((B,), schedule.T - 1, device=device, dtype=torch.long)
            for _ in range(max(1, int(d["warmup"]))):
                net(x_T, t_b)

            def one_sample():
                sample_ddim(net, x_T, ts, schedule=schedule)

            n_sample, t_sample = _timed(one_sample, device, int(d["steps"]), seconds)
    row = {
        "preset": preset, "device": str(device), "params": count_parameters(model),
        "batch_size": B, "train_img_s": n_train * B / t_train,
        "sample_img_s": n_sample * B / t_sample,
        "nfe_img_s": n_sample * B * int(d["sample_steps"]) / t_sample,
        "sample_steps": int(d["sample_steps"]), "train_iters": n_train, "sample_runs": n_sample,
        "warmup": int(d["warmup"]), "bf16": bool(fast),
    }
    model = opt = net = None  # free the network before emptying the CUDA cache
    if cuda:
        torch.cuda.empty_cache()
    return row


def bench_table(rows: list[dict]) -> str:
    """The float32 and bf16 figures of each (preset, device) side by side ("-" where bf16 was not run)."""
    head = ("preset", "device", "params", "batch", "train img/s fp32", "bf16", "sample img/s fp32", "bf16",
            "NFE img/s fp32", "bf16", "sampler steps")
    pairs: dict = {}
    for r in rows:
        pairs.setdefault((r["preset"], r["device"]), {})[bool(r["bf16"])] = r
    lines = [head]
    for (preset, device), by in pairs.items():
        base = by.get(False) or by[True]

        def fig(key, fast):
            return f"{by[fast][key]:.4g}" if fast in by else "-"

        lines.append((preset, device, f"{base['params'] / 1e6:.2f}M", str(base["batch_size"]),
                      fig("train_img_s", False), fig("train_img_s", True), fig("sample_img_s", False),
                      fig("sample_img_s", True), fig("nfe_img_s", False), fig("nfe_img_s", True),
                      str(base["sample_steps"])))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.rjust(w) if i >= 2 else c.ljust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(lines[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in lines[1:]])
