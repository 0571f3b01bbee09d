"""Where a training step of the ``cpu`` preset spends its time on this CPU, and what each lever buys.

    python scripts/bench/train_profile.py [--seconds 40] [--variants as_trained,fused_adam,...] [--profile]

Each variant runs the training loop's own pieces on random CIFAR-sized data -- the loader's batch
(:class:`diffnotes.data.ImageLoader`, flips included), :func:`diffnotes.train.train_step` with labels and
label dropout, the EMA update -- for ``--seconds`` after a warm-up, and prints images per second. A lever
that changes the recipe (the batch size) is marked: it changes what the model learns per image, not only
the speed. ``--profile`` adds the operators that take the most time in one variant (torch.profiler,
self CPU time), grouped by the part of the step they belong to.

The variants:

* ``as_trained`` -- what ``python -m diffnotes train --preset cpu`` runs: batch 64, bf16 autocast,
  channels-last, Adam (its default multi-tensor ``foreach`` step), gradient clipping at 1.0, EMA;
* ``fp32`` -- the same without bf16 autocast (what a CPU without native bf16 runs);
* ``contiguous`` -- bf16 without channels-last;
* ``fused_adam`` -- Adam's single-kernel ``fused=True`` step;
* ``gn_fp32`` -- GroupNorm computed in float32 on a float32 copy of its bf16 input, its output cast back
  (the order GroupNorm -> SiLU -> conv unchanged; numerically a little more accurate, not bit-identical);
* ``compiled`` -- ``torch.compile`` of the network (``--compile``; the compilation is in the warm-up);
* ``no_clip`` -- without gradient clipping (to see its cost; not a recipe change we make);
* ``batch32`` / ``batch128`` -- the batch size (a recipe change).

Run it with nothing else running (a background training run halves every figure).
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

from diffnotes._util import use_bf16
from diffnotes.data import ImageLoader
from diffnotes.recipe import EMA
from diffnotes.schedules import linear_schedule
from diffnotes.train import train_step
from diffnotes.unet import count_parameters, make_unet

VARIANTS = {
    "as_trained": dict(),
    "fp32": dict(bf16=False),
    "contiguous": dict(channels_last=False),
    "fused_adam": dict(fused=True),
    "gn_fp32": dict(gn_fp32=True),
    "compiled": dict(compiled=True),
    "no_clip": dict(grad_clip=None),
    "batch32": dict(batch_size=32),
    "batch128": dict(batch_size=128),
}
BASE = dict(batch_size=64, bf16=True, channels_last=True, fused=False, grad_clip=1.0, gn_fp32=False, compiled=False)
RECIPE_CHANGES = {"batch32", "batch128", "no_clip"}


class _GroupNormFP32(torch.nn.GroupNorm):
    def forward(self, x):
        return torch.nn.functional.group_norm(x.float(), self.num_groups, self.weight, self.bias,
                                              self.eps).to(x.dtype)


def _groupnorm_in_fp32(model: torch.nn.Module) -> None:
    for m in model.modules():
        if type(m) is torch.nn.GroupNorm:
            m.__class__ = _GroupNormFP32


def make_step(v: dict, n_images: int = 4096):
    """A closure running one training iteration of variant ``v`` (batch, step, EMA)."""
    torch.manual_seed(0)
    model = make_unet("cpu")
    fmt = torch.channels_last if v["channels_last"] else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    if v["gn_fp32"]:
        _groupnorm_in_fp32(model)
    net = torch.compile(model) if v["compiled"] else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=v["fused"] or None)
    ema = EMA(model, 0.9995, False)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_images, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (n_images,), generator=gen)
    loader = ImageLoader(images, v["batch_size"], seed=0, flip=True, labels=labels)
    schedule = linear_schedule(1000)
    state = {"step": 0}

    def step():
        x_0, y = loader.next_labeled_batch()
        if v["channels_last"]:
            x_0 = x_0.contiguous(memory_format=torch.channels_last)
        loss = train_step(net, x_0, schedule, opt, lr=1e-4, grad_clip=v["grad_clip"], generator=gen,
                          bf16=v["bf16"], y=y, p_uncond=0.1)
        ema.update(model, state["step"])
        state["step"] += 1
        return loss

    return step


def rate(step, batch_size: int, seconds: float, warmup: int = 3) -> tuple[float, int]:
    for _ in range(warmup):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        float(step())
        n += 1
    return n * batch_size / (time.perf_counter() - t0), n


PARTS = (  # (part, substrings of operator names), first match wins
    ("convolution", ("conv", "mkldnn_convolution")),
    ("GroupNorm", ("group_norm",)),
    ("SiLU", ("silu",)),
    ("attention", ("softmax", "bmm", "baddbmm", "scaled_dot_product", "_efficient_attention", "_flash_attention")),
    ("linear", ("addmm", "aten::mm", "linear")),
    ("optimizer + EMA", ("_foreach", "_fused_adam", "lerp", "addcdiv", "sqrt")),
    ("dtype casts", ("aten::copy_", "aten::to", "_to_copy")),
    ("elementwise", ("aten::add", "aten::mul", "aten::sub", "aten::div", "aten::where", "aten::cat")),
)


def profile(step, iters: int = 10) -> None:
    from torch.profiler import ProfilerActivity, profile as tprofile
    for _ in range(3):
        step()
    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iters):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    by_part = defaultdict(float)
    for e in events:
        part = next((p for p, keys in PARTS if any(k in e.key for k in keys)), "other")
        by_part[part] += e.self_cpu_time_total
    print(f"\nself CPU time per iteration, by part ({iters} iterations; {total / iters / 1e3:.0f} ms each):")
    print("| part | ms per iteration | share |\n|---|---|---|")
    for part, us in sorted(by_part.items(), key=lambda kv: -kv[1]):
        print(f"| {part} | {us / iters / 1e3:.1f} | {100 * us / total:.1f} % |")
    print("\nthe 15 operators with the most self CPU time:")
    print("| operator | ms per iteration | calls per iteration |\n|---|---|---|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]:
        print(f"| {e.key} | {e.self_cpu_time_total / iters / 1e3:.1f} | {e.count / iters:.0f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=40.0, help="timed seconds per variant (after 3 warm-up steps)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {list(VARIANTS)}")
    p.add_argument("--profile", default=None, metavar="VARIANT", help="also profile this variant's step")
    args = p.parse_args()
    names = [s for s in args.variants.split(",") if s]
    bad = [s for s in names + ([args.profile] if args.profile else []) if s not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s) {bad}; choose from {list(VARIANTS)}")
    if not args.seconds > 0:
        p.error(f"--seconds must be > 0, got {args.seconds}")
    bf16_native = use_bf16(torch.device("cpu"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {bf16_native}; "
          f"preset cpu ({count_parameters(make_unet('cpu')) / 1e6:.2f}M parameters), {args.seconds:g} s per variant")
    print("| variant | batch | bf16 | channels-last | Adam | clip | img/s | steps timed | vs as_trained |")
    print("|---|---|---|---|---|---|---|---|---|")
    base_rate = None
    for name in names:
        v = {**BASE, **VARIANTS[name]}
        step = make_step(v)
        r, n = rate(step, v["batch_size"], args.seconds)
        base_rate = r if name == "as_trained" else base_rate
        rel = f"{r / base_rate:.2f}x" if base_rate else "-"
        mark = " (recipe change)" if name in RECIPE_CHANGES else ""
        print(f"| {name}{mark} | {v['batch_size']} | {v['bf16']} | {v['channels_last']} | "
              f"{'fused' if v['fused'] else 'foreach'} | {v['grad_clip']} | {r:.1f} | {n} | {rel} |", flush=True)
    if args.profile:
        v = {**BASE, **VARIANTS[args.profile]}
        step = make_step(v)
        print(f"\nprofile of {args.profile}:")
        profile(step)


if __name__ == "__main__":
    main()
