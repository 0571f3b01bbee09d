"""Tests for diffnotes.widgets: every reachable control value computes, results match the
samplers and schedules they show, NFE counts are real, and the UI builds and recomputes once.

Headless: the figures are drawn with matplotlib's Agg canvas into ipywidgets.Image, no display.
Small sizes: an exact oracle model (2-D Gaussian mixture, or a point set of 3x8x8 images) and a
100-step schedule.
"""
import math

import ipywidgets
import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from diffnotes import generate  # noqa: E402
from diffnotes.generate import SAMPLERS  # noqa: E402
from diffnotes import widgets as W  # noqa: E402
from diffnotes.oracles import GaussianMixture, PointSet  # noqa: E402
from diffnotes.samplers import sample_ddim  # noqa: E402
from diffnotes.schedules import (  # noqa: E402
    cosine_schedule,
    linear_schedule,
    make_timesteps,
    respace,
)
from diffnotes.sde import SubVPSDE  # noqa: E402

T = 100
MODES = torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=torch.float64)


@pytest.fixture(scope="module")
def schedule():
    # beta up to 0.2 so that alpha_bar_T ~ 2e-5: x_T ~ N(0, I) is the right prior for T = 100
    return linear_schedule(T, beta_start=1e-3, beta_end=0.2)


@pytest.fixture(scope="module")
def mixture():
    return GaussianMixture([0.5, 0.5], MODES, [torch.eye(2, dtype=torch.float64) * 0.05] * 2)


@pytest.fixture(scope="module")
def x_T():
    return torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


class Counter:
    """The test's own count of model calls (independent of widgets.CountingModel)."""

    def __init__(self, model):
        self.model, self.n = model, 0

    def __call__(self, x, t):
        self.n += 1
        return self.model(x, t)


def quadratic_ok(S):
    try:
        make_timesteps(T, S, "quadratic")
        return True
    except ValueError:
        return False


def near_modes(x, tol=1.0):
    """Every 2-D point within ``tol`` of a mixture mode (the modes have std 0.22)."""
    return bool((torch.cdist(x.double(), MODES).min(1).values < tol).all())


# --------------------------------------------------------------------------- helpers
def test_step_choices_are_valid_step_counts():
    assert W.step_choices(100) == [1, 2, 5, 10, 20, 50, 100]
    assert W.step_choices(300) == [1, 2, 5, 10, 20, 50, 100, 200, 300]
    assert W.step_choices(1000) == list(W.STEP_CHOICES)
    assert W.step_choices(1) == [1]
    for T_ in (1, 7, 64, 999):
        c = W.step_choices(T_)
        assert c[-1] == T_ and all(1 <= s <= T_ for s in c) and c == sorted(set(c))
    with pytest.raises(ValueError, match="T must be an integer"):
        W.step_choices(0)


def test_image_grid_layout_and_values():
    x = -torch.ones(4, 3, 8, 8)
    x[3] = 1.0  # last tile white
    g = W.image_grid(x, nrow=2, padding=2, pad_value=7)
    assert g.shape == (2 * 10 + 2, 2 * 10 + 2, 3) and g.dtype == np.uint8
    assert (g[2:10, 2:10] == 0).all()  # tile 0 at row 0, col 0: x=-1 -> byte 0
    assert (g[12:20, 12:20] == 255).all()  # tile 3 at row 1, col 1: x=1 -> 255
    assert (g[0] == 7).all() and (g[:, 10:12] == 7).all()  # padding
    grey = W.image_grid(torch.zeros(1, 1, 4, 4), padding=0)
    assert grey.shape == (4, 4, 3) and (grey == 128).all()  # round(127.5) = 128, three equal channels
    assert W.image_grid(torch.zeros(3, 5, 6), padding=0).shape == (5, 6, 3)  # a single [C, H, W]
    assert W.image_grid(torch.zeros(5, 3, 4, 4), padding=0).shape == (8, 12, 3)  # default nrow 3
    with pytest.raises(ValueError, match=r"x must be images of shape \[N, C, H, W\]"):
        W.image_grid(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="finite"):
        W.image_grid(torch.full((1, 3, 2, 2), float("nan")))


def test_synthetic_image():
    img = W.synthetic_image(32)
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32
    assert img.min() >= -1 and img.max() <= 1
    assert img.std() > 0.3  # not blank: a gradient with shapes
    with pytest.raises(ValueError, match="size must be an integer in"):
        W.synthetic_image(4)


def test_counting_model_and_matching_vpsde():
    c = W.CountingModel(lambda x, t: x)
    for _ in range(3):
        c(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))
    assert c.calls == 3
    with pytest.raises(ValueError, match="model must be callable"):
        W.CountingModel(3)
    # the explorer integrates the one VP bridge (diffnotes.adapters.vp_sde_for), as `sample` does
    ex = W.SamplerExplorer(lambda x, t: torch.zeros_like(x), linear_schedule(), x_T=torch.zeros(4, 2))
    sde = generate.vp_sde_for(linear_schedule())
    assert (ex.sde.beta_min, ex.sde.beta_max) == (sde.beta_min, sde.beta_max)


# --------------------------------------------------------------------------- EtaExplorer
def test_eta_explorer_every_reachable_value(schedule, mixture, x_T):
    ex = W.EtaExplorer(mixture.eps_model(schedule), schedule, x_T=x_T)
    assert list(ex.steps.options) == W.step_choices(T)
    assert (ex.eta.min, ex.eta.max) == (0.0, 1.0)
    for spacing in ex.spacing.options:
        for S in ex.steps.options:
            for eta in (ex.eta.min, ex.eta.max):
                ex.spacing.value, ex.steps.value, ex.eta.value = spacing, S, eta
                r = ex.compute()
                if spacing == "quadratic" and not quadratic_ok(S):
                    assert r["samples"] is None and "too many steps for quadratic" in r["error"]
                    continue
                assert r["error"] is None
                assert r["samples"].shape == x_T.shape and torch.isfinite(r["samples"]).all()
                assert len(r["x0_trajectory"]) == len(r["timesteps"]) == r["nfe"] == S
                assert all(x0.shape == x_T.shape for x0 in r["x0_trajectory"])
                assert torch.equal(r["timesteps"], make_timesteps(T, S, spacing))
                # the last step lands on alpha_bar_prev = 1 with sigma = 0: x_0 = x0_hat exactly
                assert torch.equal(r["samples"], r["x0_trajectory"][-1])


def test_eta_explorer_determinism_and_eta_effect(schedule, mixture, x_T):
    model = mixture.eps_model(schedule)
    ex = W.EtaExplorer(model, schedule, x_T=x_T, steps=20, eta=0.0)
    a = ex.compute()["samples"]
    assert torch.equal(a, ex.compute()["samples"])  # same call twice
    ex.seed = 12345
    assert torch.equal(a, ex.compute()["samples"])  # eta = 0 does not use the generator
    # exactly what sample_ddim gives
    ref = sample_ddim(model, x_T, make_timesteps(T, 20), schedule=schedule, eta=0.0)
    assert torch.equal(a, ref)
    assert near_modes(a)  # the exact denoiser and 20 DDIM steps land on the mixture
    ex.eta.value = 1.0
    b1 = ex.compute()["samples"]
    assert torch.equal(b1, ex.compute()["samples"])  # the seed fixes the noise
    ex.seed = 7
    b2 = ex.compute()["samples"]
    assert not torch.allclose(b1, b2)  # eta > 0: the noise depends on the seed
    ex.eta.value = 0.5
    c = ex.compute()["samples"]
    assert not torch.allclose(a, c) and not torch.allclose(b2, c)  # eta changes the samples


def test_eta_explorer_images_and_drawn_noise(schedule):
    pts = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    model = PointSet(pts).eps_model(schedule)
    ex = W.EtaExplorer(model, schedule, shape=(3, 8, 8), n_images=4, seed=3, steps=10)
    assert ex.x_T.shape == (4, 3, 8, 8) and ex.x_T.dtype == torch.float32
    ex2 = W.EtaExplorer(model, schedule, shape=(3, 8, 8), n_images=4, seed=3)
    assert torch.equal(ex.x_T, ex2.x_T)  # x_T drawn from the seed
    r = ex.compute()
    assert r["samples"].shape == (4, 3, 8, 8) and len(r["x0_trajectory"]) == 10
    # the exact denoiser of a point set memorises: each sample is (nearly) one of the points
    d = torch.cdist(r["samples"].double().flatten(1), pts.flatten(1)).min(1).values
    assert (d < 0.05 * math.sqrt(3 * 8 * 8)).all()
    ui = ex.show()
    assert isinstance(ui, ipywidgets.Widget) and ex.last_error is None
    assert ex._image.value[:8] == b"\x89PNG\r\n\x1a\n"
    # x_T given with n_images: its first rows
    ex3 = W.EtaExplorer(model, schedule, x_T=ex.x_T, n_images=2)
    assert torch.equal(ex3.x_T, ex.x_T[:2])


def test_eta_explorer_bad_arguments(schedule, mixture, x_T):
    model = mixture.eps_model(schedule)
    with pytest.raises(ValueError, match="pass x_T"):
        W.EtaExplorer(model, schedule)
    with pytest.raises(ValueError, match="x_T must hold images"):
        W.EtaExplorer(model, schedule, x_T=torch.zeros(2, 5, 4, 4))
    with pytest.raises(ValueError, match="schedule must be a diffnotes.schedules.Schedule"):
        W.EtaExplorer(model, x_T=x_T)
    with pytest.raises(ValueError, match="n_images must be an integer in"):
        W.EtaExplorer(model, schedule, x_T=x_T, n_images=9)
    with pytest.raises(ValueError, match="eta must lie in"):
        W.EtaExplorer(model, schedule, x_T=x_T, eta=1.5)
    model.schedule = schedule  # a model that carries its schedule (like diffnotes.pretrained())
    assert W.EtaExplorer(model, x_T=x_T).schedule is schedule


# --------------------------------------------------------------------------- ScheduleExplorer
def test_schedule_explorer_values_at_t():
    img = W.synthetic_image(16).double()  # float64 so that x_t can be checked to 1e-12
    ex = W.ScheduleExplorer(img, T=1000, seed=0)
    assert ex.noise.dtype == torch.float64
    refs = {"linear": linear_schedule(1000), "cosine": cosine_schedule(1000)}
    for kind, ref in refs.items():
        ex.kind.value = kind
        assert ex.t.max == 999
        for t in (0, 1, 500, 999):
            ex.t.value = t
            r = ex.compute()
            ab = ref.alpha_bar[t].item()
            assert r["error"] is None and r["t"] == t
            assert r["alpha_bar_t"] == pytest.approx(ab, rel=1e-12)
            assert r["snr_db_t"] == pytest.approx(10 * math.log10(ab / (1 - ab)), rel=1e-9, abs=1e-9)
            assert torch.allclose(r["alpha_bar"], ref.alpha_bar, rtol=1e-12, atol=0)
            assert torch.allclose(r["x_t"], math.sqrt(ab) * img + math.sqrt(1 - ab) * ex.noise,
                                  rtol=0, atol=1e-12)
    assert ex.compute()["x_t"].shape == img.shape


def test_schedule_explorer_every_respacing():
    ex = W.ScheduleExplorer(T=1000)
    ex.kind.value = "respaced"
    assert not ex.steps.disabled
    for base in ex.base.options:
        parent = linear_schedule(1000) if base == "linear" else cosine_schedule(1000)
        for spacing in ex.spacing.options:
            for S in ex.steps.options:
                ex.base.value, ex.spacing.value, ex.steps.value = base, spacing, S
                for t in (0, ex.t.max):
                    ex.t.value = t
                    r = ex.compute()
                    try:
                        ts = make_timesteps(1000, S, spacing)
                    except ValueError:
                        assert r["schedule"] is None and "too many steps for quadratic" in r["error"]
                        continue
                    ref = respace(parent, ts)
                    assert r["error"] is None and ex.t.max == S - 1 and r["schedule"].T == S
                    assert r["alpha_bar_t"] == pytest.approx(ref.alpha_bar[t].item(), rel=1e-12)
                    assert r["snr_db_t"] == pytest.approx(ref.snr_db[t].item(), rel=1e-9, abs=1e-9)
                    # respacing keeps alpha_bar at the kept steps
                    assert r["alpha_bar_t"] == pytest.approx(parent.alpha_bar[r["t_original"]].item(), rel=1e-12)
    ex.kind.value = "linear"
    assert ex.steps.disabled and ex.t.max == 999


def test_schedule_explorer_t_follows_the_original_index():
    ex = W.ScheduleExplorer(T=1000, t=250)
    ex.kind.value = "respaced"  # 50 uniform steps: kept indices 0, 20, ..., 980
    r = ex.compute()
    assert ex.t.max == 49 and abs(r["t_original"] - 250) <= 10
    ex.kind.value = "linear"
    assert ex.t.value == 250  # back where it was


def test_schedule_explorer_image_input_and_title():
    ex = W.ScheduleExplorer()
    assert ex.synthetic
    fig = ex.figure(ex.compute())
    assert any("synthetic" in ax.get_title() for ax in fig.axes)
    img = torch.zeros(1, 1, 8, 8)
    ex2 = W.ScheduleExplorer(img)
    assert not ex2.synthetic and ex2.compute()["x_t"].shape == (1, 8, 8)
    assert not any("synthetic" in ax.get_title() for ax in ex2.figure(ex2.compute()).axes)
    with pytest.raises(ValueError, match="image must lie in"):
        W.ScheduleExplorer(torch.full((3, 4, 4), 2.0))
    with pytest.raises(ValueError, match="image must be a float tensor"):
        W.ScheduleExplorer(torch.zeros(3, 4, 4, dtype=torch.uint8))


# --------------------------------------------------------------------------- SamplerExplorer
def test_sampler_explorer_nfe_is_the_real_count(schedule, mixture, x_T):
    counter = Counter(mixture.eps_model(schedule))
    ref = mixture.sample(200, generator=torch.Generator().manual_seed(3))
    ex = W.SamplerExplorer(counter, schedule, x_T=x_T, reference=ref)
    # every sampler of the registry but the flow samplers, which need a velocity model (chapter 10's explorer)
    noise_samplers = [n for n, s in SAMPLERS.items() if s.kind != "flow"]
    assert list(ex.sampler.options) == [(SAMPLERS[n].label, n) for n in noise_samplers]
    assert {"flow_euler", "flow_heun"} == set(SAMPLERS) - set(noise_samplers)
    per_step = {"pc": 2, "ode_heun": 2}
    for name in noise_samplers:
        ex.sampler.value = name
        assert ex.eta.disabled == (name != "ddim") and ex.tol.disabled == (name != "ode_rk45")
        budgets = [None] if name == "ode_rk45" else list(ex.nfe.options)
        tols = [v for _, v in ex.tol.options] if name == "ode_rk45" else [ex.tol.value]
        for budget in budgets:
            if budget is not None:
                ex.nfe.value = budget
            for tol in tols:
                ex.tol.value = tol
                for eta in ((0.0, 1.0) if name == "ddim" else (0.0,)):
                    ex.eta.value = eta
                    if name == "analytic":
                        ex.compute()      # estimates Gamma once per set of timesteps (not sampler NFE)
                    counter.n = 0
                    r = ex.compute()
                    assert r["error"] is None and r["sampler"] == name and r["label"] == SAMPLERS[name].label
                    assert r["samples"].shape == x_T.shape and torch.isfinite(r["samples"]).all()
                    assert r["nfe"] == counter.n  # reported = calls the model actually received
                    if name == "ode_rk45":
                        assert r["nfe"] == r["info"]["nfe"] and r["steps"] is None
                    elif name == "heun":   # no correction on the step onto the data
                        assert r["steps"] == max(1, (budget + 1) // 2) and r["nfe"] == 2 * r["steps"] - 1
                        assert r["nfe"] <= budget
                    else:
                        k = per_step.get(name, 1)
                        assert r["steps"] == max(1, budget // k) and r["nfe"] == k * r["steps"]
                        assert r["nfe"] <= max(budget, k)


def test_sampler_explorer_samples(schedule, mixture, x_T):
    ref = mixture.sample(400, generator=torch.Generator().manual_seed(3))
    ex = W.SamplerExplorer(mixture.eps_model(schedule), schedule, x_T=x_T, nfe=100, reference=ref)
    out = {}
    for name in (n for n, s in SAMPLERS.items() if s.kind != "flow"):  # the noise model's samplers
        ex.sampler.value = name
        ex.tol.value = 1e-5
        a = ex.compute()["samples"]
        ex.seed = 99
        b = ex.compute()["samples"]
        ex.seed = 0
        stochastic = name in ("ddpm", "euler_maruyama", "pc", "analytic")
        assert stochastic == bool(SAMPLERS[name].stochastic)  # the registry says which draw noise
        assert torch.equal(a, b) != stochastic  # only the stochastic samplers use the generator
        assert near_modes(a, 1.2), name  # with 100 NFE every sampler lands on the mixture
        out[name] = a
    # the deterministic samplers all solve the probability-flow ODE from the same x_T
    assert (out["ode_heun"] - out["ode_rk45"]).abs().max() < 0.1
    assert (out["ddim"] - out["ode_rk45"]).abs().max() < 0.1
    assert (out["dpmpp2m"] - out["ode_rk45"]).abs().max() < 0.1
    assert (out["heun"] - out["ode_rk45"]).abs().max() < 0.1
    assert not torch.allclose(out["ddpm"], out["ddim"])


def test_sampler_explorer_analytic_dpm_needs_data(schedule, mixture, x_T):
    ex = W.SamplerExplorer(mixture.eps_model(schedule), schedule, x_T=x_T, sampler="analytic", nfe=20)
    r = ex.compute()
    assert r["samples"] is None and "reference" in r["error"]
    ex.reference = mixture.sample(400, generator=torch.Generator().manual_seed(3))
    r = ex.compute()
    assert r["error"] is None and r["nfe"] == 20 and near_modes(r["samples"], 1.2)


def test_sampler_explorer_bad_arguments(schedule, mixture, x_T):
    model = mixture.eps_model(schedule)
    with pytest.raises(ValueError, match="sde must be a VPSDE"):
        W.SamplerExplorer(model, schedule, x_T=x_T, sde=SubVPSDE())
    with pytest.raises(ValueError, match="sampler must be one of"):
        W.SamplerExplorer(model, schedule, x_T=x_T, sampler="DDIM")  # a label, not a name
    with pytest.raises(ValueError, match="t_end must lie in"):
        W.SamplerExplorer(model, schedule, x_T=x_T, t_end=0.0)
    ex = W.SamplerExplorer(model, schedule, x_T=x_T)
    with pytest.raises(ValueError, match="sampler must be one of"):
        ex.steps_for("ode_rk45", 10)


# --------------------------------------------------------------------------- the UI
def _count_computes(monkeypatch, ex):
    calls = []
    original = ex.compute

    def counted():
        calls.append(1)
        return original()

    monkeypatch.setattr(ex, "compute", counted)
    return calls


def _sliders(ex):
    return [c for c in ex._controls + ex._view_controls if hasattr(c, "continuous_update")]


def test_ui_builds_and_recomputes_once_per_change(schedule, mixture, x_T, monkeypatch):
    ref = mixture.sample(50, generator=torch.Generator().manual_seed(0))
    ex = W.EtaExplorer(mixture.eps_model(schedule), schedule, x_T=x_T, steps=10, reference=ref)
    calls = _count_computes(monkeypatch, ex)
    ex.eta.value = 0.3
    assert calls == []  # nothing is computed before the UI exists
    ui = ex.show()
    assert isinstance(ui, ipywidgets.Widget) and ex.show() is ui
    assert calls == [1] and ex.last_error is None and "NFE = 10" in ex._message.value
    assert ex._image.value[:4] == b"\x89PNG"
    assert all(s.continuous_update is False for s in _sliders(ex)) and len(_sliders(ex)) == 3
    ex.eta.value = 0.6
    assert len(calls) == 2 and ex.last_result["eta"] == 0.6
    ex.steps.value = 20
    assert len(calls) == 3 and "NFE = 20" in ex._message.value
    png = ex._image.value
    ex.track.value = 5  # view-only: redraws from the last result
    assert len(calls) == 3 and ex._image.value != png and ex.last_error is None
    # an invalid combination: a message instead of the figure, and no exception
    ex.spacing.value = "quadratic"
    ex.steps.value = 50
    assert "too many steps for quadratic" in ex._message.value and ex._image.layout.display == "none"
    ex.steps.value = 5
    assert ex._image.layout.display is None and ex.last_error is None


def test_ui_schedule_explorer_one_recompute(monkeypatch):
    ex = W.ScheduleExplorer(W.synthetic_image(16), T=200)
    calls = _count_computes(monkeypatch, ex)
    ex.show()
    assert calls == [1] and ex.last_error is None and "alpha_bar_t" in ex._message.value
    ex.kind.value = "respaced"  # also moves t and its range: still one recompute
    assert len(calls) == 2 and ex.t.max == 49
    ex.steps.value = 5
    assert len(calls) == 3 and ex.t.max == 4
    ex.t.value = 4
    assert len(calls) == 4 and ex.last_result["t"] == 4 and ex.last_error is None
    assert all(s.continuous_update is False for s in _sliders(ex))


def test_ui_says_it_is_computing_and_caches_settings(schedule, mixture, x_T, monkeypatch):
    ex = W.EtaExplorer(mixture.eps_model(schedule), schedule, x_T=x_T[:8], steps=10)
    seen = []
    original = ex.compute

    def watched():
        seen.append(ex._message.value)          # what the reader sees while the new setting computes
        return original()

    monkeypatch.setattr(ex, "compute", watched)
    ex.show()
    assert "computing" in seen[0] and "computed in" in ex._message.value
    first = ex.last_result["samples"]
    ex.eta.value = 0.5
    assert len(seen) == 2 and "computing" in seen[1] and "eta = 0.5" in seen[1]
    ex.eta.value = 0.0                           # back to a setting computed before: no recomputation
    assert len(seen) == 2 and "from the cache" in ex._message.value
    assert torch.equal(ex.last_result["samples"], first)
    ex.track.value = 1                           # a view-only control redraws without computing
    assert len(seen) == 2


def test_ui_sampler_explorer(schedule, mixture, x_T, monkeypatch):
    ex = W.SamplerExplorer(mixture.eps_model(schedule), schedule, x_T=x_T, nfe=10)
    calls = _count_computes(monkeypatch, ex)
    assert isinstance(ex.show(), ipywidgets.Widget) and calls == [1] and ex.last_error is None
    ex.sampler.value = "ode_heun"
    assert len(calls) == 2 and "PF-ODE Heun: NFE = 10 (5 steps" in ex._message.value
    ex.sampler.value = "ode_rk45"
    assert len(calls) == 3 and "adaptive" in ex._message.value and ex.last_error is None
    assert all(s.continuous_update is False for s in _sliders(ex))


# ---------------------------------------------------------------------------------------------
# the flow explorer (chapter 10)
# ---------------------------------------------------------------------------------------------
def _flow_setup():
    from diffnotes import flow_matching as fm
    from diffnotes.oracles import Gaussian

    gauss = Gaussian([0.5, -1.0], [[0.6, 0.2], [0.2, 0.3]])
    x_1 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lam, U = torch.linalg.eigh(gauss.cov)
    exact = gauss.mean + x_1 @ (U @ torch.diag(lam.sqrt()) @ U.T).T   # the Gaussian's flow in closed form
    return fm.velocity_model(gauss), x_1, exact


def test_flow_grid_runs_from_noise_to_data_and_refuses_bad_input():
    for kind in W.GRIDS:
        g = W.flow_grid(5, kind)
        assert g.shape == (6,) and g[0] == 1.0 and g[-1] == 0.0 and bool((g[1:] < g[:-1]).all())
    fine_data, fine_noise = W.flow_grid(4, "fine near the data"), W.flow_grid(4, "fine near the noise")
    assert fine_data[-2] - fine_data[-1] < 0.25 < fine_data[0] - fine_data[1]
    assert fine_noise[0] - fine_noise[1] < 0.25 < fine_noise[-2] - fine_noise[-1]
    with pytest.raises(ValueError, match="kind must be one of"):
        W.flow_grid(4, "cosine")
    with pytest.raises(ValueError, match="n must be"):
        W.flow_grid(0, "uniform")


def test_flow_explorer_converges_to_the_exact_flow_at_each_solvers_order():
    v, x_1, exact = _flow_setup()
    ex = W.FlowExplorer(v, x_1)
    # its reference is the closed form to well below the 3 decimals the explorer prints
    torch.testing.assert_close(ex.exact_end, exact, atol=2e-4, rtol=0)
    errors = {}
    for solver in ("Euler", "Heun"):
        ex.solver.value = solver
        for n in (8, 16, 32):
            ex.steps.value = n
            r = ex.compute()
            assert r["paths"].shape == (n + 1, 64, 2) and torch.equal(r["paths"][-1], r["ends"])
            assert r["nfe"] == (n if solver == "Euler" else 2 * n - 1)
            errors[solver, n] = r["mean_error"]
    # halving the step divides Euler's error by about 2 and Heun's by about 4
    assert 1.7 < errors["Euler", 16] / errors["Euler", 32] < 2.3
    assert 3.0 < errors["Heun", 16] / errors["Heun", 32] < 5.0
    assert errors["Heun", 32] < errors["Euler", 32] / 10


def test_flow_explorer_every_control_value_draws_and_bad_arguments_fail():
    v, x_1, _ = _flow_setup()
    ex = W.FlowExplorer(v, x_1[:8], reference=x_1)
    for grid in W.GRIDS:
        ex.grid.value = grid
        for n in W.FLOW_STEPS:
            ex.steps.value = n
            r = ex.refresh()
            assert r is not None and r["steps"] == n and ex.last_error is None
    ex.show()
    assert "velocity calls" in ex._message.value
    with pytest.raises(ValueError, match="x_1 must be"):
        W.FlowExplorer(v, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="steps must be one of"):
        W.FlowExplorer(v, x_1, steps=5)
