"""Time every explorer of the course the way a reader meets it: the first draw, then each main control
moved once, at the settings its chapter opens with. Prints one row per update: compute, drawing (the
PNG the widget shows) and their sum, the figure that the 1.5 s goal of an explorer applies to.

    python scripts/bench/explorers.py            # fast mode, the shipped model, this machine's CPU

Browser and widget transport add a little on top; tests/test_browser.py prints the end-to-end time of
one slider move in JupyterLab.
"""
from __future__ import annotations

import time

import torch

from diffnotes import course, oracles, schedules, widgets
from diffnotes.checkpoints import load_model
from diffnotes.widgets import GuidanceExplorer
from diffnotes.widgets.base import figure_png


def timed_refresh(ex) -> tuple[float, float]:
    # what a slider move costs: compute + figure + PNG (the UI built, as in a notebook)
    t0 = time.perf_counter()
    result = ex.compute()
    t1 = time.perf_counter()
    figure_png(ex.figure(result))
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    model = load_model(bf16=None)
    image = widgets.synthetic_image(32)
    linear = schedules.linear_schedule(1000)
    mix = oracles.GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], [0.25 * torch.eye(2, dtype=torch.float64)] * 2)
    cases = [
        ("ScheduleExplorer (ch. 1)", lambda: widgets.ScheduleExplorer(image=image, T=1000, seed=0, t=300),
         [("t", 700), ("kind", "cosine")]),
        ("EtaExplorer (ch. 3)", lambda: widgets.EtaExplorer(model, shape=(3, 32, 32), n_images=4, seed=0, steps=10),
         [("eta", 0.5), ("steps", 20)]),
        ("SamplerExplorer (ch. 5)", lambda: widgets.SamplerExplorer(mix.eps_model(linear), linear, shape=(2,),
                                                                     n_images=500, seed=0, sampler="ode_heun", nfe=50),
         [("nfe", 20), ("sampler", "ddim")]),
        ("ScheduleExplorer (ch. 6)", lambda: widgets.ScheduleExplorer(image, kind="cosine", t=600), [("t", 900)]),
        ("GuidanceExplorer (ch. 8)", lambda: GuidanceExplorer(model, n_images=course.sizes(4, 6), label=3, w=2.0, steps=10),
         [("w", 3.0), ("label", 5)]),
    ]
    print(f"{'explorer':28s} {'update':22s} {'compute s':>10s} {'draw s':>8s} {'total s':>8s}")
    for name, make, moves in cases:
        ex = make()
        c, d = timed_refresh(ex)
        print(f"{name:28s} {'first draw':22s} {c:10.2f} {d:8.2f} {c + d:8.2f}")
        for attr, value in moves:
            control = getattr(ex, attr)
            ex._syncing = True                # set the control without triggering the widget's own refresh
            try:
                control.value = value
            finally:
                ex._syncing = False
            ex._sync_controls()
            c, d = timed_refresh(ex)
            print(f"{'':28s} {f'{attr} -> {value}':22s} {c:10.2f} {d:8.2f} {c + d:8.2f}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
