"""The sampler registry (diffnotes.generate): every registered sampler, run through the one dispatch, against the
exact Gaussian oracle; the registry's NFE against counted calls; the command line offering every sampler."""
import math

import pytest
import torch

from diffnotes import cli, data, generate, oracles
from diffnotes import flow_matching as fm
from diffnotes._util import CountingModel
from diffnotes.fast_samplers import karras_timesteps
from diffnotes.generate import SAMPLERS, run_sampler, sampler_timesteps
from diffnotes.schedules import linear_schedule, uniform_timesteps

MEAN = torch.tensor([1.0, -0.5], dtype=torch.float64)
COV = torch.tensor([[0.30, 0.10], [0.10, 0.20]], dtype=torch.float64)


@pytest.fixture(scope="module")
def schedule():
    return linear_schedule(1000)


@pytest.fixture(scope="module")
def gaussian():
    return oracles.Gaussian(MEAN, COV)


def _exact_model(name, gaussian, schedule):
    """The oracle's exact network for sampler ``name``: its velocity for a flow sampler, else its noise."""
    return fm.velocity_model(gaussian) if SAMPLERS[name].kind == "flow" else gaussian.eps_model(schedule)


def _run(name, gaussian, schedule, n, steps, seed=0):
    """``n`` samples of ``name`` with ``steps`` steps from the exact model; (samples, calls)."""
    spec = SAMPLERS[name]
    counter = CountingModel(_exact_model(name, gaussian, schedule))
    gen = torch.Generator().manual_seed(seed)
    x_T = torch.randn(n, 2, dtype=torch.float64, generator=gen)
    kw = dict(schedule=schedule, generator=gen, sde=generate.vp_sde_for(schedule))
    if spec.kind == "discrete":
        ts = uniform_timesteps(schedule.T, steps)
        if spec.needs_gamma:  # Gamma of the exact model, from exact samples of the data
            from diffnotes.fast_samplers import estimate_gamma

            x0 = gaussian.sample(4000, generator=torch.Generator().manual_seed(1))
            kw["gamma"] = estimate_gamma(gaussian.eps_model(schedule), x0, ts, schedule=schedule,
                                         generator=torch.Generator().manual_seed(2))
        x = run_sampler(name, counter, x_T, timesteps=ts, **kw)
    elif spec.kind == "adaptive":
        x = run_sampler(name, counter, x_T, rtol=1e-6, atol=1e-6, **kw)
    else:
        # the predictor-corrector with Langevin steps sized on batch norms (per-sample norms of 2-D points
        # are too noisy: diffnotes.sde.sample_pc)
        x = run_sampler(name, counter, x_T, steps=steps, pc_norm="batch", **kw)
    return x, counter.calls


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_registered_sampler_lands_on_the_exact_gaussian(name, gaussian, schedule):
    """With the exact noise model (a flow sampler: the exact velocity), 4 000 samples have the data's mean and covariance within 5 standard errors
    (Monte Carlo: se of a mean about sqrt(0.3 / 4000) = 0.009) and 0.02 (measured: at most 0.0075 at these
    steps). A sampler that skipped its noise, its last step or its eta would miss the covariance by 0.1 or more."""
    steps = 500 if SAMPLERS[name].kind == "sde" else 250
    x, _ = _run(name, gaussian, schedule, 4000, steps)
    assert x.shape == (4000, 2) and torch.isfinite(x).all()
    mean_err = (x.mean(0) - MEAN).abs().max().item()
    cov_err = (torch.cov(x.T) - COV).abs().max().item()
    se_mean = math.sqrt(0.3 / 4000)
    assert mean_err < 5 * se_mean, (name, mean_err)
    assert cov_err < 0.02, (name, cov_err)


@pytest.mark.parametrize("name", [n for n, s in SAMPLERS.items() if s.kind != "adaptive"])
def test_registry_nfe_is_the_counted_number_of_calls(name, gaussian, schedule):
    spec = SAMPLERS[name]
    for steps in (1, 2, 7):
        _, calls = _run(name, gaussian, schedule, 8, steps)
        assert calls == spec.nfe(steps), (name, steps, calls)
        assert spec.steps_for(spec.nfe(steps)) == steps


def test_deterministic_samplers_ignore_the_generator_and_stochastic_ones_use_it(gaussian, schedule):
    for name, spec in SAMPLERS.items():
        a, _ = _run(name, gaussian, schedule, 16, 5, seed=0)
        counter = CountingModel(_exact_model(name, gaussian, schedule))
        x_T = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        kw = dict(schedule=schedule, sde=generate.vp_sde_for(schedule), generator=torch.Generator().manual_seed(7))
        if spec.needs_gamma:
            kw["gamma"] = torch.ones(5, dtype=torch.float64)
        if spec.kind == "discrete":
            b = run_sampler(name, counter, x_T, timesteps=uniform_timesteps(schedule.T, 5), **kw)
        elif spec.kind == "adaptive":
            b = run_sampler(name, counter, x_T, rtol=1e-6, atol=1e-6, **kw)
            a = run_sampler(name, counter, x_T, rtol=1e-6, atol=1e-6, **dict(kw, generator=None))
        else:
            b = run_sampler(name, counter, x_T, steps=5, **kw)
        if spec.needs_gamma:
            a = run_sampler(name, counter, x_T, timesteps=uniform_timesteps(schedule.T, 5),
                            **dict(kw, generator=torch.Generator().manual_seed(8)))
        same = torch.equal(a, b)
        assert same == (spec.stochastic is not True), name


def test_karras_spacing_is_edms_from_the_uniform_first_step(schedule):
    ts = sampler_timesteps(1000, 10, "karras", schedule=schedule)
    assert torch.equal(ts, karras_timesteps(schedule, 10, t_max=int(uniform_timesteps(1000, 10)[0])))
    assert torch.equal(sampler_timesteps(1000, 10, "uniform"), uniform_timesteps(1000, 10))
    # a sampler's own defaults: dpmpp2m on the karras grid, ddim's 100 uniform steps, ddpm's all T
    assert torch.equal(SAMPLERS["dpmpp2m"].timesteps(schedule, 10), ts)
    assert torch.equal(SAMPLERS["ddim"].timesteps(schedule), uniform_timesteps(1000, 100))
    assert len(SAMPLERS["ddpm"].timesteps(schedule)) == 1000
    with pytest.raises(ValueError, match="time grid"):
        SAMPLERS["pc"].timesteps(schedule, 10)
    with pytest.raises(ValueError, match="needs the schedule"):
        sampler_timesteps(1000, 10, "karras")
    with pytest.raises(ValueError, match="spacing must be one of"):
        sampler_timesteps(1000, 10, "log")


def test_run_sampler_says_what_is_missing(gaussian, schedule):
    model, x = gaussian.eps_model(schedule), torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="sampler must be one of"):
        run_sampler("DDIM", model, x, schedule=schedule)
    with pytest.raises(ValueError, match="runs on timesteps"):
        run_sampler("ddim", model, x, schedule=schedule)
    with pytest.raises(ValueError, match="needs gamma"):
        run_sampler("analytic", model, x, schedule=schedule, timesteps=uniform_timesteps(1000, 3))
    with pytest.raises(ValueError, match="pass sde"):
        run_sampler("pc", model, x, schedule=schedule, steps=3)


def test_the_command_line_offers_every_registered_sampler():
    parser = cli.build_parser()
    sample = parser._subparsers._group_actions[0].choices["sample"]
    fid = parser._subparsers._group_actions[0].choices["fid"]
    for sub in (sample, fid):
        action = next(a for a in sub._actions if "--sampler" in a.option_strings)
        assert tuple(action.choices) == tuple(SAMPLERS)


@pytest.mark.filterwarnings("ignore::diffnotes.data.DataWarning")  # the fake data's md5
def test_training_gamma_uses_the_first_n_training_images(tmp_path, monkeypatch):
    """Gamma = E||eps_hat||^2 / d on the first n training images: with eps_hat(x_t) = x_t at a step where
    alpha_bar is 1 - 1e-8, Gamma is the mean square of those images' pixels (to about 1e-5; two sets of
    images differ by about 1e-3)."""
    from conftest import make_fake_cifar

    folder = make_fake_cifar(tmp_path, n=4)  # 20 training images
    monkeypatch.setenv("DIFFNOTES_CIFAR10", str(folder))
    sch = linear_schedule(10, beta_start=1e-8, beta_end=1e-2)
    images = data.to_float(torch.from_numpy(data.load_cifar10(split="train")[0])).double()
    for n in (3, 20):
        got = generate.training_gamma(lambda x, t: x, [0], schedule=sch, n=n)
        want = float(images[:n].pow(2).mean())
        assert got.dtype == torch.float64 and got.shape == (1,)
        assert abs(float(got[0]) - want) < 1e-4, (n, float(got[0]), want)
    half = generate.training_gamma(lambda x, t: torch.full_like(x, 0.5), [0, 9], schedule=sch, n=5)
    assert torch.allclose(half, torch.full((2,), 0.25, dtype=torch.float64))
    with pytest.raises(ValueError, match="n must be between 1 and 20"):
        generate.training_gamma(lambda x, t: x, [0], schedule=sch, n=21)
    monkeypatch.setenv("DIFFNOTES_CIFAR10", str(tmp_path / "missing"))
    monkeypatch.setattr(data, "cache_dir", lambda: tmp_path / "no-cache")
    with pytest.raises(data.DataNotFoundError, match="DIFFNOTES_CIFAR10"):
        generate.training_gamma(lambda x, t: x, [0], schedule=sch)
