"""Tests for diffnotes.guidance: guidance formulas against independent computations and exact oracles."""
from __future__ import annotations

import pytest
import torch

from diffnotes import derive
from diffnotes import guidance as G
from diffnotes.oracles import Gaussian, GaussianMixture
from diffnotes.samplers import sample_ddpm
from diffnotes.schedules import linear_schedule, uniform_timesteps

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def mixture():
    return GaussianMixture([0.3, 0.7], [[-1.5, 0.5], [1.0, -0.5]],
                           [[[0.3, 0.1], [0.1, 0.4]], [[0.5, 0.0], [0.0, 0.2]]])


def test_derivations_hold():
    assert derive.guidance_from_bayes().holds()
    assert derive.tilted_gaussian_by_completing_square().holds()


def test_cfg_eps_is_extrapolation():
    c, u = torch.randn(4, 3, generator=_gen(0)), torch.randn(4, 3, generator=_gen(1))
    assert torch.equal(G.cfg_eps(c, u, 0.0), c)
    torch.testing.assert_close(G.cfg_eps(c, u, 2.0), u + 3.0 * (c - u))
    with pytest.raises(ValueError, match="w"):
        G.cfg_eps(c, u, -1.0)


def test_tilted_gaussian_against_numeric_density():
    # normalise exp((1+w) log N_c - w log N_u) on a grid and take its moments
    mc, vc, mu, vu, w = 0.7, 0.5, -0.2, 1.3, 1.5
    x = torch.linspace(-12, 12, 200001, dtype=F64)
    logd = (1 + w) * (-(x - mc) ** 2 / (2 * vc)) - w * (-(x - mu) ** 2 / (2 * vu))
    d = torch.exp(logd - logd.max())
    d = d / d.sum()
    m_num = (d * x).sum()
    v_num = (d * (x - m_num) ** 2).sum()
    m, v = G.tilted_gaussian(mc, vc, mu, vu, w)
    torch.testing.assert_close(m, m_num, rtol=0, atol=1e-8)
    torch.testing.assert_close(v, v_num, rtol=1e-6, atol=0)


def test_tilted_gaussian_not_normalisable():
    with pytest.raises(ValueError, match="not normalisable"):
        G.tilted_gaussian(0.0, 2.0, 0.0, 1.0, 2.0)   # (1+w)/2 - w = -0.5 < 0


def test_labelled_mixture_class_posterior_and_bayes():
    gm = mixture()
    lab = G.LabelledOracle.from_mixture(gm)
    x = torch.randn(6, 2, generator=_gen(2), dtype=F64)
    a, s = 0.8, 0.6
    # p(y | x_t) equals the mixture's responsibilities (computed by oracles, independently)
    torch.testing.assert_close(lab.log_class_posterior(x, a, s).exp(), gm.responsibilities(x, a, s))
    # grad log p(y | x_t) by autograd of the log posterior == closed form (score difference)
    for y in (0, 1):
        xr = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(lab.log_class_posterior(xr, a, s)[:, y].sum(), xr)
        torch.testing.assert_close(lab.grad_log_class_posterior(x, a, s, y), g)
        # Bayes: conditional score = unconditional score + grad log p(y | x_t)
        cond_score = -lab.conditional_eps(x, a, s, y) / s
        torch.testing.assert_close(G.conditional_score(gm.score(x, a, s), g), cond_score)


def test_exact_classifier_guidance_equals_cfg():
    gm = mixture()
    lab = G.LabelledOracle.from_mixture(gm)
    sched = linear_schedule(1000)
    model = lab.eps_model(sched)
    x = torch.randn(5, 2, generator=_gen(3), dtype=F64)
    t = torch.full((5,), 400)
    for w in (0.0, 1.0, 3.0):
        cg = G.classifier_guided_model(lambda x, t: model(x, t), lab.classifier(sched), 1, 1 + w, sched)
        torch.testing.assert_close(cg(x, t), G.cfg_model(model, 1, w)(x, t))


def test_cfg_model_batches_with_null_class():
    calls = []

    class Net(torch.nn.Module):
        null_class = 10

        def forward(self, x, t, y=None):
            calls.append(x.shape[0])
            return x * (y.to(x.dtype)[:, None] + 1)

    x = torch.randn(3, 2, generator=_gen(4))
    out = G.cfg_model(Net(), 2, 1.0)(x, torch.zeros(3, dtype=torch.long))
    assert calls == [6]
    torch.testing.assert_close(out, 2 * 3 * x - 11 * x)


@pytest.mark.parametrize("w", [0.0, 2.0])
def test_guided_sampler_matches_tilted_gaussian(w):
    # conditional N(1, 0.5), unconditional N(-0.5, 0.5): equal variances, so the tilt of every noisy
    # marginal is the noisy marginal of N(1 + w 1.5, 0.5) and DDPM with the guided eps samples it
    cond, unc = Gaussian([1.0], [[0.5]]), Gaussian([-0.5], [[0.5]])
    lab = G.LabelledOracle(unc, [cond])
    sched = linear_schedule(1000)
    n = 10000
    x = sample_ddpm(G.cfg_model(lab.eps_model(sched), 0, w), torch.randn(n, 1, generator=_gen(5), dtype=F64),
                    uniform_timesteps(1000, 500), schedule=sched, generator=_gen(6))
    m, v = G.tilted_gaussian(1.0, 0.5, -0.5, 0.5, w)
    se_m, se_v = (v / n) ** 0.5, v * (2 / n) ** 0.5
    assert abs(x.mean() - m) < 4 * se_m + 0.01          # 0.01: 500 steps' discretisation error (about 0.005)
    assert abs(x.var() - v) < 4 * se_v + 0.01


def test_classifier_eps_checks():
    e = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="scale"):
        G.classifier_eps(e, e, 0.5, -1.0)
    g = torch.ones(2, 3)
    torch.testing.assert_close(G.classifier_eps(e, g, 0.75, 2.0), -torch.ones(2, 3))


def test_guidance_explorer_caches_and_counts():
    from diffnotes.widgets import GuidanceExplorer

    calls = []

    class Net(torch.nn.Module):
        null_class = 10
        schedule = linear_schedule(1000)

        def forward(self, x, t, y=None):
            calls.append(x.shape[0])
            return 0.1 * x + 0.01 * (y.to(x.dtype)[:, None, None, None] if y is not None else 0)

    ex = GuidanceExplorer(Net(), n_images=2, label=1, w=2.0, steps=5)
    r = ex.refresh()
    assert r["samples"].shape == (2, 3, 32, 32) and r["nfe"] == 10 and not r["cached"]
    assert calls == [4] * 5                        # one batched call (cond + uncond) per step
    assert ex.refresh()["cached"] and len(calls) == 5
    ex.w.value = 0.0
    r0 = ex.refresh()
    assert r0["nfe"] == 5 and calls[-1] == 2      # w = 0: the conditional model only
    assert not torch.equal(r0["samples"], r["samples"])
    ex.show()                                      # builds the UI and draws once without error
    assert ex.last_error is None and "class 1" in ex._message.value
    with pytest.raises(ValueError, match="w must be one of"):
        GuidanceExplorer(Net(), w=0.7)
