"""Tests for diffnotes.samplers: the DDIM family's algebra, DDPM as its eta=1 member, samplers
against exact oracles (Monte Carlo and exact moment propagation), inversion, slerp, errors."""
import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffnotes.forward import eps_from_x0, q_sample
from diffnotes.oracles import Gaussian, GaussianMixture
from diffnotes.samplers import (
    StepResult,
    ddim_invert,
    ddim_sigma,
    ddim_step,
    ddpm_step,
    sample_ddim,
    sample_ddpm,
    slerp,
)
from diffnotes.schedules import cosine_schedule, linear_schedule, respace, uniform_timesteps

F64 = torch.float64


LINEAR = linear_schedule(1000)
COSINE = cosine_schedule(1000)
ONE = torch.ones(1, dtype=F64)

# A correlated 2-D Gaussian and a well separated 3-component mixture (means 8 apart, std 0.5).
GAUSS = Gaussian([1.0, -0.5], [[1.0, 0.6], [0.6, 0.5]])
MIX = GaussianMixture(
    [0.2, 0.3, 0.5],
    [[-4.0, 0.0], [4.0, 0.0], [0.0, 4.0]],
    [0.25 * torch.eye(2, dtype=F64)] * 3,
)


def _ab_pairs(schedule, ts):
    """alpha_bar at each visited step and at the step after it (1 after the last)."""
    ab = schedule.alpha_bar[ts]
    return ab, torch.cat([ab[1:], ONE])


# Each sampler: how to run it, and its single step with explicit noise (for moment propagation).
SAMPLERS = {
    "ddpm_beta_tilde": (
        lambda m, x, ts, sch, g: sample_ddpm(m, x, ts, schedule=sch, variance="beta_tilde", generator=g),
        lambda x, e, ab, abp, z: ddpm_step(x, e, ab, abp, variance="beta_tilde", noise=z),
    ),
    "ddpm_beta": (
        lambda m, x, ts, sch, g: sample_ddpm(m, x, ts, schedule=sch, variance="beta", generator=g),
        lambda x, e, ab, abp, z: ddpm_step(x, e, ab, abp, variance="beta", noise=z),
    ),
    "ddim_eta0": (
        lambda m, x, ts, sch, g: sample_ddim(m, x, ts, schedule=sch, eta=0.0, generator=g),
        lambda x, e, ab, abp, z: ddim_step(x, e, ab, abp, sigma_t=0.0, noise=z),
    ),
    "ddim_eta1": (
        lambda m, x, ts, sch, g: sample_ddim(m, x, ts, schedule=sch, eta=1.0, generator=g),
        lambda x, e, ab, abp, z: ddim_step(x, e, ab, abp, sigma_t=ddim_sigma(ab, abp, 1.0), noise=z),
    ),
}


def _exact_moments(step, model, ts, schedule, mean, cov):
    """Exact mean and covariance of a sampler's output for a Gaussian oracle.

    The Gaussian oracle's eps is affine in x, so each step is x -> A x + b + std * z. A and b are
    read off the implementation by stepping the points 0, e_1, ..., e_D with z = 0, and std by
    stepping with z = 1; then mean -> A mean + b, cov -> A cov A^T + std^2 I. This has no
    Monte-Carlo error: it measures the sampler's discretisation bias alone.
    """
    D = mean.numel()
    pts = torch.cat([torch.zeros(1, D, dtype=F64), torch.eye(D, dtype=F64)])
    zero, one = torch.zeros_like(pts), torch.ones_like(pts)
    for t, ab, abp in zip(ts.tolist(), *_ab_pairs(schedule, ts)):
        eps = model(pts, torch.full((D + 1,), t, dtype=torch.long))
        out = step(pts, eps, ab, abp, zero)
        std = (step(pts, eps, ab, abp, one) - out)[0, 0]
        b, A = out[0], (out[1:] - out[0]).T
        mean = A @ mean + b
        cov = A @ cov @ A.T + std**2 * torch.eye(D, dtype=F64)
    return mean, cov


def _exact_prior(oracle, alpha_bar):
    """Moments of q(x_T) = N(sqrt(ab) mu, ab Sigma + (1-ab) I) for a Gaussian oracle."""
    return math.sqrt(alpha_bar) * oracle.mean, alpha_bar * oracle.cov + (1 - alpha_bar) * torch.eye(2, dtype=F64)


# ----------------------------------------------------------------------------- ddim_sigma
@pytest.mark.parametrize("schedule", [LINEAR, COSINE], ids=["linear", "cosine"])
def test_ddim_sigma_eta1_is_beta_tilde_on_full_schedule(schedule):
    sigma = ddim_sigma(schedule.alpha_bar, schedule.alpha_bar_prev, 1.0)
    assert sigma.dtype == F64
    # Equal up to float64 round-off: 1 - ab_t/ab_{t-1} reproduces beta_t only to ~1e-16/beta_t.
    torch.testing.assert_close(sigma**2, schedule.beta_tilde, rtol=1e-11, atol=1e-300)
    assert sigma[0] == 0  # first step: alpha_bar_prev = 1


@pytest.mark.parametrize("schedule", [LINEAR, COSINE], ids=["linear", "cosine"])
@pytest.mark.parametrize("S", [10, 50, 333])
def test_ddim_sigma_eta1_on_skipped_steps_is_respaced_beta_tilde(schedule, S):
    ts = uniform_timesteps(schedule.T, S)
    ab, abp = _ab_pairs(schedule, ts)
    sigma = ddim_sigma(ab, abp, 1.0)
    respaced = respace(schedule, ts)  # ordered increasingly
    torch.testing.assert_close((sigma**2).flip(0), respaced.beta_tilde, rtol=1e-13, atol=1e-300)
    # ... and it is NOT the parent schedule's beta_tilde at those indices (skipping matters).
    assert not torch.allclose((sigma**2)[:-1], schedule.beta_tilde[ts][:-1], rtol=1e-3)


@settings(deadline=None, max_examples=30)
@given(ab=st.floats(1e-4, 0.999), r=st.floats(0.0, 1.0), eta=st.floats(0.0, 3.0))
def test_ddim_sigma_is_linear_in_eta_and_bounded_at_eta1(ab, r, eta):
    abp = ab + r * (1 - ab)  # ab <= abp <= 1
    s1 = ddim_sigma(ab, abp, 1.0)
    torch.testing.assert_close(ddim_sigma(ab, abp, eta), eta * s1, rtol=1e-14, atol=1e-300)  # atol: subnormal eta
    assert float(s1) ** 2 <= (1 - abp) * (1 + 1e-12)  # eta = 1 always fits in DDIM's budget


def test_ddim_sigma_pinned():
    # sqrt((1-0.8)/(1-0.5) * (1 - 0.5/0.8)) = sqrt(0.4 * 0.375) = sqrt(0.15)
    assert float(ddim_sigma(0.5, 0.8, 1.0)) == pytest.approx(0.387298334620741688, rel=1e-15)
    assert float(ddim_sigma(0.5, 0.8, 0.5)) == pytest.approx(0.193649167310370844, rel=1e-15)
    assert float(ddim_sigma(0.5, 0.8, 0.0)) == 0.0
    assert float(ddim_sigma(0.3, 1.0, 1.0)) == 0.0  # last step lands on the data


# ----------------------------------------------------------------------------- one step
def _step_coefficients(ab, abp, sigma):
    """Coefficients (c_x0, c_eps, c_z) of ddim_step when eps_hat is the true noise of x_t.

    x_t = sqrt(ab) x0 + sqrt(1-ab) eps  and  x_prev = c_x0 x0 + c_eps eps + c_z z.
    """
    one = torch.ones(1, 1, dtype=F64)
    zero = torch.zeros(1, 1, dtype=F64)

    def run(x0, eps, z):
        x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
        return float(ddim_step(x_t, eps, ab, abp, sigma_t=sigma, noise=z))

    return run(one, zero, zero), run(zero, one, zero), run(zero, zero, one)


@st.composite
def _ddim_case(draw):
    abp = draw(st.floats(0.01, 0.999))
    ab = abp * draw(st.floats(0.01, 0.999))
    u = draw(st.floats(0.0, 1.0))  # sigma = u * sqrt(1 - abp) covers the whole DDIM family
    return ab, abp, u * math.sqrt(1 - abp)


@settings(deadline=None, max_examples=40)
@given(case=_ddim_case())
def test_ddim_family_marginal_is_q_algebraically(case):
    """q_sigma(x_prev | x_t, x0) integrated over q(x_t | x0) gives q(x_prev | x0) for every sigma."""
    ab, abp, sigma = case
    c_x0, c_eps, c_z = _step_coefficients(ab, abp, sigma)
    # the conditional of Song et al. eq. 7: mean sqrt(abp) x0 + sqrt(1-abp-s^2) (x_t - sqrt(ab) x0)/sqrt(1-ab)
    assert c_x0 == pytest.approx(math.sqrt(abp), rel=1e-12)
    # (abs: at sigma^2 = 1 - abp the square root of a round-off-sized number is ~1e-8)
    assert c_eps == pytest.approx(math.sqrt(max(0.0, 1 - abp - sigma**2)), rel=1e-12, abs=1e-7)
    assert c_z == pytest.approx(sigma, rel=1e-15, abs=0)
    # marginal: mean sqrt(abp) x0 (E[eps] = 0), variance c_eps^2 + c_z^2 = 1 - abp
    assert c_eps**2 + c_z**2 == pytest.approx(1 - abp, rel=1e-12)


@settings(deadline=None, max_examples=8)
@given(case=_ddim_case(), seed=st.integers(0, 2**31 - 1))
def test_ddim_family_marginal_is_q_by_monte_carlo(case, seed):
    ab, abp, sigma = case
    n = 20000
    g = torch.Generator().manual_seed(seed)
    x0 = torch.full((n, 1), 0.7, dtype=F64)
    x_t = q_sample(x0, ab, generator=g)  # x_t ~ q(x_t | x0)
    eps = eps_from_x0(x_t, x0, ab)  # the exact noise, so x0_hat = x0: a draw from q_sigma(. | x_t, x0)
    x_prev = ddim_step(x_t, eps, ab, abp, sigma_t=sigma, generator=g)
    var = 1 - abp
    # Gaussian sample: SE(mean) = sqrt(var/n), SE(variance) = var sqrt(2/n); tolerance 5 SE.
    assert abs(float(x_prev.mean()) - math.sqrt(abp) * 0.7) < 5 * math.sqrt(var / n)
    assert abs(float(x_prev.var()) - var) < 5 * var * math.sqrt(2 / n)


@pytest.mark.parametrize("subsequence", [None, 7], ids=["full", "every7th"])
def test_ddim_eta1_step_is_ddpm_posterior_step(subsequence):
    """eta = 1 gives exactly the DDPM posterior mean and variance (Song et al. 2021, sec. 4.1)."""
    ts = torch.arange(999, -1, -1) if subsequence is None else torch.arange(999, -1, -subsequence)
    ab, abp = _ab_pairs(LINEAR, ts)
    g = torch.Generator().manual_seed(0)
    B = ts.numel()  # one sample per step, per-sample coefficients [B]
    x_t, eps, z = (torch.randn(B, 3, generator=g, dtype=F64) for _ in range(3))
    sigma = ddim_sigma(ab, abp, 1.0)
    ddim = ddim_step(x_t, eps, ab, abp, sigma_t=sigma, noise=z)
    ddpm = ddpm_step(x_t, eps, ab, abp, variance="beta_tilde", noise=z)
    torch.testing.assert_close(ddim, ddpm, rtol=0, atol=1e-10)
    ddim_mean = ddim_step(x_t, eps, ab, abp, sigma_t=sigma, noise=torch.zeros_like(z))
    ddpm_mean = ddpm_step(x_t, eps, ab, abp, noise=torch.zeros_like(z))
    torch.testing.assert_close(ddim_mean, ddpm_mean, rtol=0, atol=1e-10)
    if subsequence is None:
        # on the full schedule the posterior variance is the schedule's beta_tilde
        torch.testing.assert_close(((ddpm - ddpm_mean) / z) ** 2, LINEAR.beta_tilde.flip(0)[:, None].expand(B, 3),
                                   rtol=1e-9, atol=1e-300)


@settings(deadline=None, max_examples=30)
@given(ab=st.floats(1e-3, 0.99), r=st.floats(0.01, 0.99), seed=st.integers(0, 1000))
def test_ddpm_step_mean_is_ho_eps_form(ab, r, seed):
    """1/sqrt(alpha_t) (x_t - beta_t/sqrt(1-ab) eps) with beta_t = 1 - ab/abp (Ho et al. Alg. 2)."""
    abp = ab + r * (1 - ab)
    g = torch.Generator().manual_seed(seed)
    x_t, eps = torch.randn(2, 4, 3, generator=g, dtype=F64)
    beta = 1 - ab / abp
    expected = (x_t - beta / math.sqrt(1 - ab) * eps) / math.sqrt(1 - beta)
    got = ddpm_step(x_t, eps, ab, abp, noise=torch.zeros_like(x_t))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_ddpm_step_beta_variance_on_subsequence_is_respaced_beta():
    ts = uniform_timesteps(1000, 20)
    ab, abp = _ab_pairs(COSINE, ts)
    x = torch.zeros(ts.numel(), 1, dtype=F64)
    z = torch.ones_like(x)
    std_beta = ddpm_step(x, x, ab, abp, variance="beta", noise=z)[:, 0]
    std_tilde = ddpm_step(x, x, ab, abp, variance="beta_tilde", noise=z)[:, 0]
    rs = respace(COSINE, ts)
    torch.testing.assert_close(std_beta[:-1] ** 2, rs.betas.flip(0)[:-1], rtol=1e-12, atol=0)
    torch.testing.assert_close(std_tilde**2, rs.beta_tilde.flip(0), rtol=1e-12, atol=1e-300)
    assert std_beta[-1] == 0 and std_tilde[-1] == 0  # the last step adds no noise


def test_step_pinned_numbers():
    # ab = 0.5, abp = 0.8, x_t = 1, eps = 0.5: x0_hat = 1/sqrt(0.5) - 0.5 = 0.9142135623730950
    x, e = torch.ones(1, 1, dtype=F64), torch.full((1, 1), 0.5, dtype=F64)
    z = torch.ones_like(x)
    # sqrt(0.8) * 0.914213562373095 + sqrt(0.2) * 0.5
    assert float(ddim_step(x, e, 0.5, 0.8)) == pytest.approx(1.041304266317372763, rel=1e-14)
    # eta = 1, z = 1: sqrt(0.8) x0_hat + sqrt(0.2 - 0.15) * 0.5 + sqrt(0.15); equals the DDPM value
    assert float(ddim_step(x, e, 0.5, 0.8, sigma_t=ddim_sigma(0.5, 0.8, 1.0), noise=z)) == pytest.approx(
        1.316799202063124967, rel=1e-14)
    # DDPM: beta = 0.375, mean = (1 - 0.375/sqrt(0.5) * 0.5)/sqrt(0.625)
    assert float(ddpm_step(x, e, 0.5, 0.8, noise=0 * z)) == pytest.approx(0.929500867442383278, rel=1e-14)
    assert float(ddpm_step(x, e, 0.5, 0.8, noise=z)) == pytest.approx(1.316799202063124967, rel=1e-14)
    assert float(ddpm_step(x, e, 0.5, 0.8, variance="beta", noise=z)) == pytest.approx(
        1.541873303138177803, rel=1e-14)


# ----------------------------------------------------------------------------- samplers vs oracles
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_exact_moments_converge_to_oracle(name):
    """Deterministic: the sampler's exact output law for the Gaussian oracle tends to the data law.

    Started from the exact q(x_T), every sampler keeps the mean exactly (the steps are affine and
    the oracle's eps vanishes at the marginal mean); the covariance error is first order in the
    step size (measured max |cov error| on the cosine schedule: 50 steps 9e-3..8e-2, 500 steps
    9e-4..9e-3, i.e. ~10x smaller).
    """
    step = SAMPLERS[name][1]
    model = GAUSS.eps_model(COSINE)
    errs = {}
    for S in (50, 500):
        ts = uniform_timesteps(1000, S)
        mean, cov = _exact_moments(step, model, ts, COSINE, *_exact_prior(GAUSS, float(COSINE.alpha_bar[ts[0]])))
        torch.testing.assert_close(mean, GAUSS.mean, rtol=0, atol=1e-9)
        errs[S] = float((cov - GAUSS.cov).abs().max())
    assert errs[500] < 0.02
    assert errs[500] < errs[50] / 5


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_recovers_gaussian_oracle_moments(name):
    run, step = SAMPLERS[name]
    n, S = 4000, 200
    ts = uniform_timesteps(1000, S)
    model = GAUSS.eps_model(COSINE)
    g = torch.Generator().manual_seed(1234)
    ab_T = float(COSINE.alpha_bar[ts[0]])
    x_T = q_sample(GAUSS.sample(n, generator=g), ab_T, generator=g)  # exact q(x_T): no prior mismatch
    x = run(model, x_T, ts, COSINE, g)
    mu, Sig = GAUSS.mean, GAUSS.cov
    # The discretisation bias of 200 steps, computed exactly (see _exact_moments); it is real for
    # beta_tilde variance (~2% of the variance) so the tolerance is 4 standard errors PLUS |bias|,
    # and the bias itself must stay below 1.5 SE (it is at most ~1 SE here).
    e_mean, e_cov = _exact_moments(step, model, ts, COSINE, *_exact_prior(GAUSS, ab_T))
    se_mean = (Sig.diagonal() / n).sqrt()
    se_cov = ((Sig.diagonal()[:, None] * Sig.diagonal()[None, :] + Sig**2) / n).sqrt()
    assert bool(((e_mean - mu).abs() < 1e-9).all())
    assert bool(((e_cov - Sig).abs() < 1.5 * se_cov).all()), (e_cov - Sig) / se_cov
    assert bool(((x.mean(0) - mu).abs() < 4 * se_mean).all()), (x.mean(0) - mu) / se_mean
    dev = (torch.cov(x.T) - Sig).abs()
    assert bool((dev < 4 * se_cov + (e_cov - Sig).abs()).all()), dev / se_cov


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_recovers_mixture_weights(name):
    run = SAMPLERS[name][0]
    n, S = 4000, 100
    ts = uniform_timesteps(1000, S)
    g = torch.Generator().manual_seed(99)
    x_T = q_sample(MIX.sample(n, generator=g), float(LINEAR.alpha_bar[ts[0]]), generator=g)
    x = run(MIX.eps_model(LINEAR), x_T, ts, LINEAR, g)
    # Components are 16 std apart, so nearest-mean labels are the components (error ~1e-15).
    k = torch.cdist(x, MIX.means).argmin(1)
    w = torch.bincount(k, minlength=3).to(F64) / n
    se = (MIX.weights * (1 - MIX.weights) / n).sqrt()  # binomial SE
    # 100 steps: the weight bias measured with 20000 samples was below 0.5 SE of this test.
    assert bool(((w - MIX.weights).abs() < 4 * se).all()), (w - MIX.weights) / se
    # samples sit on the components, not between them (each within 6 std of its mean)
    assert float((x - MIX.means[k]).norm(dim=1).max()) < 6 * 0.5


def test_eta0_is_deterministic_and_eta1_is_not():
    ts = uniform_timesteps(1000, 20)
    model = GAUSS.eps_model(LINEAR)
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    a = sample_ddim(model, x_T, ts, schedule=LINEAR, eta=0.0, generator=torch.Generator().manual_seed(1))
    b = sample_ddim(model, x_T, ts, schedule=LINEAR, eta=0.0, generator=torch.Generator().manual_seed(2))
    c = sample_ddim(model, x_T, ts, schedule=LINEAR, eta=0.0)
    assert torch.equal(a, b) and torch.equal(a, c)
    d = sample_ddim(model, x_T, ts, schedule=LINEAR, eta=1.0, generator=torch.Generator().manual_seed(1))
    e = sample_ddim(model, x_T, ts, schedule=LINEAR, eta=1.0, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(d, e)
    f = sample_ddim(model, x_T, ts, schedule=LINEAR, eta=1.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(d, f)  # same generator seed, same sample


@pytest.mark.parametrize("S", [1000, 30])
def test_sample_ddim_eta1_equals_sample_ddpm_and_matches_manual_loop(S):
    """The samplers are thin loops over the steps: same generator -> same noise -> same result."""
    ts = uniform_timesteps(1000, S)
    model = GAUSS.eps_model(LINEAR)
    x_T = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    ddpm = sample_ddpm(model, x_T, ts, schedule=LINEAR, generator=torch.Generator().manual_seed(7))
    ddim = sample_ddim(model, x_T, ts, schedule=LINEAR, eta=1.0, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(ddim, ddpm, rtol=0, atol=1e-9)
    # eta = 0.5 by hand with ddim_step and ddim_sigma
    g = torch.Generator().manual_seed(7)
    x = x_T
    for t, ab, abp in zip(ts.tolist(), *_ab_pairs(LINEAR, ts)):
        eps = model(x, torch.full((5,), t))
        x = ddim_step(x, eps, ab, abp, sigma_t=ddim_sigma(ab, abp, 0.5), generator=g)
    got = sample_ddim(model, x_T, ts, schedule=LINEAR, eta=0.5, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(got, x, rtol=0, atol=1e-12)


def test_ddim_invert_exact_for_constant_eps():
    """With an eps that does not depend on x, inversion is the exact inverse of the eta=0 sampler."""
    c = torch.tensor([0.3, -1.2], dtype=F64)

    def model(x, t):
        return c.expand_as(x).clone()

    x_0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    ts = uniform_timesteps(1000, 37)
    x_T = ddim_invert(model, x_0, ts, schedule=LINEAR)
    torch.testing.assert_close(sample_ddim(model, x_T, ts, schedule=LINEAR), x_0, rtol=0, atol=1e-9)


@pytest.mark.parametrize("schedule", [LINEAR, COSINE], ids=["linear", "cosine"])
def test_ddim_invert_round_trip_with_oracle(schedule):
    """invert then sample recovers x_0; the error is first order in the step size.

    Measured max errors over 16 points: 0.076-0.078 with 50 steps, 0.008 (linear) and 0.014
    (cosine, whose last steps near t = T are large) with 500 steps.
    """
    model = GAUSS.eps_model(schedule)
    x_0 = GAUSS.sample(16, generator=torch.Generator().manual_seed(5))
    err = {}
    for S in (50, 500):
        ts = uniform_timesteps(1000, S)
        x_T = ddim_invert(model, x_0, ts, schedule=schedule)
        err[S] = float((sample_ddim(model, x_T, ts, schedule=schedule) - x_0).abs().max())
    assert err[50] < 0.15
    assert err[500] < 0.025
    assert err[500] < err[50] / 4


def test_ddim_invert_latent_is_gaussian_noise():
    """The inverted latents of data have the law of x_T under q (approximately N(0, I))."""
    n = 2000
    model = GAUSS.eps_model(LINEAR)
    x_0 = GAUSS.sample(n, generator=torch.Generator().manual_seed(8))
    x_T = ddim_invert(model, x_0, uniform_timesteps(1000, 50), schedule=LINEAR)
    # q(x_T) = N(~0.0064 mu, ~I); SE of mean sqrt(1/n), of covariance entries about sqrt(2/n): 5 SE
    assert float(x_T.mean(0).abs().max()) < 5 * math.sqrt(1 / n) + 0.01
    assert float((torch.cov(x_T.T) - torch.eye(2, dtype=F64)).abs().max()) < 5 * math.sqrt(2 / n) + 0.02


def test_skipping_steps_equals_sampling_the_respaced_schedule():
    """sample(full schedule, ts) == sample(respace(schedule, ts), all its steps); the model sees original t."""
    ts = uniform_timesteps(1000, 25)
    rs = respace(LINEAR, ts)
    seen = {"full": [], "respaced": []}

    def recorder(key):
        inner = GAUSS.eps_model(LINEAR)  # a model trained on the parent: expects original indices

        def model(x, t):
            assert t.dtype == torch.long and t.shape == (x.shape[0],) and t.device == x.device
            seen[key].append(int(t[0]))
            return inner(x, t)

        return model

    x_T = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    for sampler in (sample_ddpm, sample_ddim):
        kw = {} if sampler is sample_ddpm else {"eta": 0.5}
        seen["full"].clear(), seen["respaced"].clear()
        a = sampler(recorder("full"), x_T, ts, schedule=LINEAR, generator=torch.Generator().manual_seed(4), **kw)
        b = sampler(recorder("respaced"), x_T, torch.arange(24, -1, -1), schedule=rs,
                    generator=torch.Generator().manual_seed(4), **kw)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)  # rs.alpha_bar is a cumprod of ratios
        assert seen["full"] == seen["respaced"] == ts.tolist()


# ----------------------------------------------------------------------------- callbacks, clipping, progress
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "invert"])
def test_callback_gets_a_step_result_per_step(sampler):
    ts = uniform_timesteps(1000, 12)
    model = GAUSS.eps_model(LINEAR)
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    calls = []
    if sampler == "ddpm":
        out = sample_ddpm(model, x, ts, schedule=LINEAR, callback=calls.append, generator=torch.Generator())
    elif sampler == "ddim":
        out = sample_ddim(model, x, ts, schedule=LINEAR, eta=0.3, callback=calls.append, generator=torch.Generator())
    else:
        out = ddim_invert(model, x, ts, schedule=LINEAR, callback=calls.append)
    assert len(calls) == len(ts)
    for k, info in enumerate(calls):
        assert isinstance(info, StepResult) and info.i == k
        for field in ("x", "x_next", "eps_hat", "x0_hat"):
            assert getattr(info, field).shape == x.shape
        assert info.score is None and info.v is None
    # t -> t_next along the visited indices, and -1 (the data) at the end of sampling / the start of inversion
    path = ts.tolist() + [-1] if sampler != "invert" else [-1] + ts.flip(0).tolist()
    assert [info.t for info in calls] == path[:-1] and [info.t_next for info in calls] == path[1:]
    ab = {t: float(LINEAR.alpha_bar[t]) for t in ts.tolist()} | {-1: 1.0}
    assert all(info.alpha_bar_t == ab[info.t] and info.alpha_bar_next == ab[info.t_next] for info in calls)
    assert torch.equal(calls[0].x, x)
    for a, b in zip(calls, calls[1:]):
        assert torch.equal(a.x_next, b.x)  # x after step i is x before step i+1
    assert torch.equal(calls[-1].x_next, out)
    if sampler != "invert":  # eps_hat is the model's output at (x_t, t)
        torch.testing.assert_close(calls[5].eps_hat, model(calls[5].x, torch.full((3,), calls[5].t)))
    if sampler == "ddim":  # the std of the noise each step added
        assert [info.noise_std for info in calls] == pytest.approx(ddim_sigma(LINEAR.alpha_bar[ts], torch.tensor(
            [ab[c.t_next] for c in calls], dtype=torch.float64), 0.3).tolist(), rel=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        calls[0].x = x


def test_no_silent_clipping_and_explicit_clip_x0():
    ts = uniform_timesteps(1000, 10)
    far = Gaussian([5.0, -5.0], [[0.1, 0.0], [0.0, 0.1]])  # data far outside [-1, 1]
    model = far.eps_model(LINEAR)
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    out = sample_ddim(model, x_T, ts, schedule=LINEAR)
    assert float(out.abs().min()) > 3  # nothing clipped by default
    x0s = []
    clipped = sample_ddim(model, x_T, ts, schedule=LINEAR, clip_x0=1.0, callback=lambda d: x0s.append(d.x0_hat))
    assert all(float(x0.abs().max()) <= 1.0 for x0 in x0s)
    # the last step returns x0_hat, which is then inside the box (and near its corner, since every
    # earlier step was pulled towards (5, -5) and stopped at the box)
    assert float(clipped.abs().max()) <= 1.0 and float(clipped[:, 0].min()) > 0.9 and float(clipped[:, 1].max()) < -0.9
    lohi = sample_ddpm(model, x_T, ts, schedule=LINEAR, clip_x0=(-2.0, 0.5), generator=torch.Generator())
    assert float(lohi[:, 0].max()) <= 0.5 and float(lohi[:, 1].min()) >= -2.0
    assert float(lohi[:, 0].min()) > 0.4 and float(lohi[:, 1].max()) < -1.8


def test_progress_bar(capsys):
    ts = uniform_timesteps(1000, 5)
    x = torch.zeros(2, 2, dtype=F64)
    sample_ddim(GAUSS.eps_model(LINEAR), x, ts, schedule=LINEAR, progress=True)
    assert "DDIM" in capsys.readouterr().err
    sample_ddim(GAUSS.eps_model(LINEAR), x, ts, schedule=LINEAR)
    assert capsys.readouterr().err == ""


def test_float32_input_stays_float32():
    ts = uniform_timesteps(1000, 10)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    out = sample_ddpm(GAUSS.eps_model(LINEAR), x, ts, schedule=LINEAR, generator=torch.Generator())
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())


# ----------------------------------------------------------------------------- slerp
@settings(deadline=None, max_examples=40)
@given(D=st.integers(2, 64), seed=st.integers(0, 10_000), alpha=st.floats(0.0, 1.0), scale=st.floats(0.1, 10.0))
def test_slerp_keeps_norm_and_angle(D, seed, alpha, scale):
    g = torch.Generator().manual_seed(seed)
    x0, x1 = torch.randn(2, 3, D, generator=g, dtype=F64)
    x0 = scale * x0 / x0.norm(dim=1, keepdim=True)
    x1 = scale * x1 / x1.norm(dim=1, keepdim=True)
    y = slerp(x0, x1, alpha)
    torch.testing.assert_close(y.norm(dim=1), torch.full((3,), scale, dtype=F64), rtol=1e-10, atol=0)
    theta = torch.arccos((x0 * x1).sum(1) / scale**2)
    angle0 = torch.arccos(((y * x0).sum(1) / scale**2).clamp(-1, 1))
    torch.testing.assert_close(angle0, alpha * theta, rtol=1e-6, atol=1e-6)  # arccos loses digits near 0


def test_slerp_endpoints_exact_and_differs_from_lerp():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(2, 4, 3, 8, 8, generator=g, dtype=F64)  # image-shaped latents
    assert torch.equal(slerp(x0, x1, 0.0), x0)
    assert torch.equal(slerp(x0, x1, 1.0), x1)
    mid, lerp = slerp(x0, x1, 0.5), 0.5 * (x0 + x1)
    assert float((mid - lerp).abs().max()) > 0.1
    # lerp shrinks nearly orthogonal Gaussian latents by ~1/sqrt(2); slerp does not
    assert bool((lerp.flatten(1).norm(dim=1) < 0.8 * mid.flatten(1).norm(dim=1)).all())
    # per-sample alpha [B]; and a batch of one broadcast against many alphas
    alphas = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=F64)
    per = slerp(x0, x1, alphas)
    torch.testing.assert_close(per[2], mid[2])
    path = slerp(x0[:1], x1[:1], alphas)
    assert path.shape == (4, 3, 8, 8)
    torch.testing.assert_close(path[0], x0[0])
    torch.testing.assert_close(path[3], x1[0])


def test_slerp_pinned_and_parallel_limit():
    e1, e2 = torch.tensor([[1.0, 0.0]], dtype=F64), torch.tensor([[0.0, 1.0]], dtype=F64)
    torch.testing.assert_close(slerp(e1, e2, 0.5), torch.tensor([[0.5**0.5, 0.5**0.5]], dtype=F64))
    torch.testing.assert_close(slerp(e1, e2, 1 / 3), torch.tensor([[math.cos(math.pi / 6), 0.5]], dtype=F64))
    # parallel vectors: slerp reduces to lerp, no NaN
    torch.testing.assert_close(slerp(e1, 3 * e1, 0.5), 2 * e1)


# ----------------------------------------------------------------------------- errors
def _model_ok(x, t):
    return torch.zeros_like(x)


def test_error_messages():
    x = torch.zeros(2, 2, dtype=F64)
    ts = uniform_timesteps(1000, 10)
    with pytest.raises(ValueError, match=r"eta must lie in \[0.0, inf\), got -0.1"):
        ddim_sigma(0.5, 0.8, -0.1)
    with pytest.raises(ValueError, match=r"eta must lie in \[0.0, inf\), got -1"):
        sample_ddim(_model_ok, x, ts, schedule=LINEAR, eta=-1)
    with pytest.raises(ValueError, match=r"alpha_bar_t must not exceed alpha_bar_prev.*0.9.*0.8"):
        ddim_sigma(0.9, 0.8, 1.0)
    with pytest.raises(ValueError, match=r"alpha_bar_t must lie in \(0.0, 1.0\)"):
        ddim_sigma(0.0, 0.8, 1.0)
    with pytest.raises(ValueError, match=r"sigma_t\*\*2 must not exceed 1 - alpha_bar_prev, got sigma_t\*\*2=0.36 "
                                         r"and 1 - alpha_bar_prev=0.25"):
        ddim_step(x, x, 0.5, 0.75, sigma_t=0.6)
    with pytest.raises(ValueError, match=r"eta=3.0 is too large: at step i=\d+ \(t=\d+\) sigma\*\*2="):
        sample_ddim(_model_ok, x, ts, schedule=LINEAR, eta=3.0)
    with pytest.raises(ValueError, match=r"timesteps must be strictly decreasing"):
        sample_ddim(_model_ok, x, ts.flip(0), schedule=LINEAR)
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 999\]"):
        sample_ddpm(_model_ok, x, [1000, 500, 0], schedule=LINEAR)
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 999\]"):
        ddim_invert(_model_ok, x, [5, -1], schedule=LINEAR)
    with pytest.raises(ValueError, match=r"variance must be one of \('beta_tilde', 'beta'\), got 'sigma'"):
        sample_ddpm(_model_ok, x, ts, schedule=LINEAR, variance="sigma")
    with pytest.raises(ValueError, match=r"clip_x0 must lie in \(0.0, inf\), got -1.0"):
        ddim_step(x, x, 0.5, 0.8, clip_x0=-1.0)
    with pytest.raises(ValueError, match=r"clip_x0 as a pair must be \(low, high\)"):
        ddpm_step(x, x, 0.5, 0.8, clip_x0=(1.0, -1.0))
    with pytest.raises(ValueError, match=r"eps_hat must have the shape of x_t \(2, 2\), got \(2, 3\)"):
        ddim_step(x, torch.zeros(2, 3, dtype=F64), 0.5, 0.8)
    with pytest.raises(ValueError, match=r"noise must have the shape of x_t"):
        ddpm_step(x, x, 0.5, 0.8, noise=torch.zeros(3))
    with pytest.raises(ValueError, match=r"x must have shape \[B, ...\]"):
        sample_ddim(_model_ok, torch.zeros(4, dtype=F64), ts, schedule=LINEAR)


def test_bad_model_output_names_the_step():
    x = torch.zeros(2, 2, dtype=F64)
    ts = uniform_timesteps(1000, 10)
    with pytest.raises(ValueError, match=r"model output must have the shape of x \(2, 2\), got \(2, 1\) at step i=0"):
        sample_ddim(lambda x, t: x[:, :1], x, ts, schedule=LINEAR)

    def nan_at_300(x, t):
        return torch.full_like(x, float("nan")) if int(t[0]) == 300 else torch.zeros_like(x)

    with pytest.raises(ValueError, match=r"model output contains NaN or inf at step i=6 \(t=300\)"):
        sample_ddpm(nan_at_300, x, ts, schedule=LINEAR, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"NaN or inf at step i=3 \(t=300\)"):
        ddim_invert(nan_at_300, x, ts, schedule=LINEAR)


def test_slerp_errors():
    a = torch.ones(2, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"x1 must have the shape of x0 \(2, 3\), got \(2, 4\)"):
        slerp(a, torch.ones(2, 4, dtype=F64), 0.5)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0.0, 1.0\], got 1.5"):
        slerp(a, a, 1.5)
    with pytest.raises(ValueError, match=r"non-zero norm"):
        slerp(a, torch.zeros_like(a), 0.5)
    with pytest.raises(ValueError, match=r"opposite directions"):
        slerp(a, -a, 0.5)
