"""Tests for diffnotes.forward: the forward process, the posterior and the parameterisations."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffnotes.forward import (
    eps_from_score,
    eps_from_v,
    eps_from_x0,
    posterior_mean,
    posterior_mean_coefs,
    posterior_variance,
    q_mean_std,
    q_sample,
    q_step,
    score_from_eps,
    v_from_eps,
    x0_from_eps,
    x0_from_v,
)
from diffnotes.schedules import cosine_schedule, linear_schedule, respace, uniform_timesteps

SCHEDULES = {"linear": linear_schedule(1000), "cosine": cosine_schedule(1000)}
X0 = torch.tensor([1.5, -0.5, 0.0], dtype=torch.float64)  # one value per coordinate


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_moments(x: torch.Tensor, mean: torch.Tensor, var: float, what: str, k: float = 5.0):
    """Column-wise sample mean and variance within k standard errors of the truth.

    Standard errors for N i.i.d. Gaussian draws: SE(mean) = sqrt(var/N) and
    SE(sample variance) = var * sqrt(2/(N-1)). With k = 5 a correct implementation fails with
    probability < 1e-6 per check (and the seeds are fixed, so the test is deterministic).
    """
    N = x.shape[0]
    m, v = x.mean(0), x.var(0)
    se_m = math.sqrt(var / N)
    se_v = var * math.sqrt(2.0 / (N - 1))
    assert bool(((m - mean).abs() < k * se_m).all()), f"{what}: mean {m.tolist()} vs {mean.tolist()} (SE {se_m:.2g})"
    assert bool(((v - var).abs() < k * se_v).all()), f"{what}: var {v.tolist()} vs {var} (SE {se_v:.2g})"


# --- the forward process ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_iterated_q_step_matches_q_sample(name):
    """t applications of q_step (eq. 2) give the marginal q(x_t | x_0) of eq. 4 (Monte Carlo)."""
    s = SCHEDULES[name]
    N = 20000
    g = _gen(0)
    # The chain runs in float32 (float32 noise is ~7x cheaper to draw); its rounding error,
    # ~1e-6 after 1000 steps, is far below the Monte-Carlo standard error (~7e-3).
    x = X0.expand(N, 3).to(torch.float32)
    checkpoints = {1, 10, 100, 500, 1000}
    for i in range(s.T):
        x = q_step(x, s.betas[i], generator=g)
        t = i + 1  # number of steps taken; the marginal is at schedule index i
        if t in checkpoints:
            ab = s.alpha_bar[i].item()
            _assert_moments(x.double(), math.sqrt(ab) * X0, 1 - ab, f"{name} after {t} q_steps")
            # and q_sample itself draws from the same law
            xs = q_sample(X0.expand(N, 3), ab, generator=_gen(t))
            _assert_moments(xs, math.sqrt(ab) * X0, 1 - ab, f"{name} q_sample t={t}")


def test_q_step_and_q_sample_with_given_eps_are_exact():
    g = _gen(1)
    x0 = torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64)
    ab = 0.3
    torch.testing.assert_close(q_sample(x0, ab, eps=eps), math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps,
                               rtol=1e-15, atol=1e-15)
    b = 0.02
    torch.testing.assert_close(q_step(x0, b, eps=eps), math.sqrt(1 - b) * x0 + math.sqrt(b) * eps,
                               rtol=1e-15, atol=1e-15)
    mean, std = q_mean_std(x0, ab)
    torch.testing.assert_close(q_sample(x0, ab, eps=eps), mean + std * eps, rtol=1e-15, atol=1e-15)
    # the generator path is the eps path with eps drawn from that generator
    torch.testing.assert_close(q_sample(x0, ab, generator=_gen(7)),
                               q_sample(x0, ab, eps=torch.randn(x0.shape, generator=_gen(7), dtype=x0.dtype)))
    # endpoints: alpha_bar = 1 returns x_0, alpha_bar = 0 returns eps
    torch.testing.assert_close(q_sample(x0, 1.0, eps=eps), x0)
    torch.testing.assert_close(q_sample(x0, 0.0, eps=eps), eps)


# --- the posterior -----------------------------------------------------------------------------


def _conditional_by_gaussian_conditioning(x0, xt, alpha_bar_prev, beta):
    """Mean and variance of x_{t-1} given (x_t, x_0) from the joint Gaussian, computed directly.

    Given x_0: x_{t-1} = sqrt(abp) x_0 + sqrt(1-abp) z1, x_t = sqrt(1-beta) x_{t-1} + sqrt(beta) z2,
    so (x_{t-1}, x_t) is jointly Gaussian with the 2x2 covariance C below (per coordinate), and
    E[x_{t-1} | x_t] = m1 + C12 C22^{-1} (x_t - m2), Var = C11 - C12 C22^{-1} C21 (Schur complement).
    """
    a = 1.0 - beta
    m1 = math.sqrt(alpha_bar_prev) * x0
    m2 = math.sqrt(a) * m1
    C = torch.tensor(
        [[1 - alpha_bar_prev, math.sqrt(a) * (1 - alpha_bar_prev)],
         [math.sqrt(a) * (1 - alpha_bar_prev), a * (1 - alpha_bar_prev) + beta]],
        dtype=torch.float64,
    )
    C12, C22 = C[0:1, 1:2], C[1:2, 1:2]
    gain = torch.linalg.solve(C22, C12.T).T  # C12 C22^{-1}, shape [1, 1]
    mean = m1 + gain[0, 0] * (xt - m2)
    var = (C[0:1, 0:1] - gain @ C12.T)[0, 0]
    return mean, var


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("t", [0, 1, 10, 250, 998, 999])
def test_posterior_matches_gaussian_conditioning(name, t):
    s = SCHEDULES[name]
    c = s.at(t)
    g = _gen(t)
    x0 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    xt = torch.randn(5, 3, generator=g, dtype=torch.float64)
    mean = posterior_mean(x0, xt, c["alpha_bar"], c["alpha_bar_prev"], c["beta"])
    var = posterior_variance(c["alpha_bar"], c["alpha_bar_prev"], c["beta"])
    m_ref, v_ref = _conditional_by_gaussian_conditioning(x0, xt, c["alpha_bar_prev"].item(), c["beta"].item())
    torch.testing.assert_close(mean, m_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(var, v_ref, rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(var, c["beta_tilde"], rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "schedule",
    [SCHEDULES["linear"], SCHEDULES["cosine"], respace(SCHEDULES["linear"], uniform_timesteps(1000, 20))],
    ids=["linear", "cosine", "linear-respaced"],
)
def test_posterior_marginalises_back_exact(schedule):
    """If x_t ~ q(x_t|x_0) and x_{t-1} ~ q(x_{t-1}|x_t,x_0), then x_{t-1} ~ q(x_{t-1}|x_0):
    c_0 + c_t sqrt(ab_t) = sqrt(ab_{t-1})  and  beta_tilde + c_t^2 (1 - ab_t) = 1 - ab_{t-1}."""
    s = schedule
    c0, ct = posterior_mean_coefs(s.alpha_bar, s.alpha_bar_prev, s.betas)
    bt = posterior_variance(s.alpha_bar, s.alpha_bar_prev, s.betas)
    torch.testing.assert_close(c0 + ct * s.alpha_bar.sqrt(), s.alpha_bar_prev.sqrt(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(bt + ct**2 * (1 - s.alpha_bar), 1 - s.alpha_bar_prev, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("t", [1, 300, 999])
def test_posterior_marginalises_back_monte_carlo(name, t):
    s = SCHEDULES[name]
    c = s.at(t)
    N = 20000
    g = _gen(100 + t)
    x0 = X0.expand(N, 3)
    xt = q_sample(x0, c["alpha_bar"], generator=g)
    mean = posterior_mean(x0, xt, c["alpha_bar"], c["alpha_bar_prev"], c["beta"])
    var = posterior_variance(c["alpha_bar"], c["alpha_bar_prev"], c["beta"])
    x_prev = mean + var.sqrt() * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    abp = c["alpha_bar_prev"].item()
    _assert_moments(x_prev, math.sqrt(abp) * X0, 1 - abp, f"{name} t={t} posterior marginal")


def test_posterior_first_step_returns_x0():
    # At the first step alpha_bar_prev = 1: the posterior is a point mass at x_0.
    s = SCHEDULES["linear"]
    c = s.at(0)
    x0, xt = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(posterior_mean(x0, xt, c["alpha_bar"], c["alpha_bar_prev"], c["beta"]), x0)
    assert posterior_variance(c["alpha_bar"], c["alpha_bar_prev"], c["beta"]).item() == 0.0
    # python floats give float64 tensors
    c0, ct = posterior_mean_coefs(0.5, 0.6, 1 - 0.5 / 0.6)
    assert c0.dtype == ct.dtype == torch.float64


# --- conversions between parameterisations -----------------------------------------------------


@settings(deadline=None, max_examples=40)
@given(
    ab=st.floats(1e-4, 1 - 1e-4),
    per_sample=st.booleans(),
    shape=st.sampled_from([(3, 2), (2, 3, 4, 4), (1, 5)]),
    seed=st.integers(0, 2**31 - 1),
)
def test_conversions_are_inverse_pairs(ab, per_sample, shape, seed):
    g = _gen(seed)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    if per_sample:  # different alpha_bar per sample, shape [B]
        ab = torch.rand(shape[0], generator=g, dtype=torch.float64) * (1 - 2e-4) + 1e-4
    x_t = q_sample(x0, ab, eps=eps)
    tol = dict(rtol=1e-9, atol=1e-10)  # errors are amplified by at most 1/sqrt(1e-4) = 100
    torch.testing.assert_close(x0_from_eps(x_t, eps, ab), x0, **tol)
    torch.testing.assert_close(eps_from_x0(x_t, x0, ab), eps, **tol)
    score = score_from_eps(eps, ab)
    torch.testing.assert_close(eps_from_score(score, ab), eps, **tol)
    torch.testing.assert_close(score_from_eps(eps_from_score(x0, ab), ab), x0, **tol)
    v = v_from_eps(x0, eps, ab)
    torch.testing.assert_close(eps_from_v(x_t, v, ab), eps, **tol)
    torch.testing.assert_close(x0_from_v(x_t, v, ab), x0, **tol)
    # v is a rotation of (x_0, eps): |x_t|^2 + |v|^2 = |x_0|^2 + |eps|^2
    torch.testing.assert_close(x_t**2 + v**2, x0**2 + eps**2, **tol)


def test_score_from_eps_is_gradient_of_log_q():
    """score_from_eps(eps) = grad_{x_t} log q(x_t | x_0) when eps is the noise that made x_t."""
    g = _gen(3)
    x0 = torch.randn(4, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 3, generator=g, dtype=torch.float64)
    ab = torch.tensor([0.9, 0.5, 0.1, 0.01], dtype=torch.float64)
    x_t = q_sample(x0, ab, eps=eps).requires_grad_(True)
    logq = torch.distributions.Normal(ab.sqrt()[:, None] * x0, (1 - ab).sqrt()[:, None]).log_prob(x_t).sum()
    (grad,) = torch.autograd.grad(logq, x_t)
    torch.testing.assert_close(score_from_eps(eps, ab), grad, rtol=1e-12, atol=1e-12)


# --- dtype, device, broadcasting --------------------------------------------------------------


def _all_outputs(x, y, ab, beta, abp):
    return {
        "q_step": q_step(x, beta, eps=y),
        "q_sample": q_sample(x, ab, eps=y),
        "q_mean_std.mean": q_mean_std(x, ab)[0],
        "q_mean_std.std": q_mean_std(x, ab)[1],
        "posterior_mean": posterior_mean(x, y, ab, abp, beta),
        "x0_from_eps": x0_from_eps(x, y, ab),
        "eps_from_x0": eps_from_x0(x, y, ab),
        "score_from_eps": score_from_eps(y, ab),
        "eps_from_score": eps_from_score(y, ab),
        "v_from_eps": v_from_eps(x, y, ab),
        "eps_from_v": eps_from_v(x, y, ab),
        "x0_from_v": x0_from_v(x, y, ab),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_follows_input_and_schedules_are_cast(dtype):
    s = SCHEDULES["cosine"]
    t = torch.tensor([100, 500])  # away from alpha_bar ~ 1, where float32 cancels badly
    c = s.at(t)  # float64 tensors of shape [B]
    assert c["alpha_bar"].dtype == torch.float64
    g = _gen(5)
    x = torch.randn(2, 3, 4, 4, generator=g).to(dtype)
    y = torch.randn(2, 3, 4, 4, generator=g).to(dtype)
    outs = _all_outputs(x, y, c["alpha_bar"], c["beta"], c["alpha_bar_prev"])
    for name, out in outs.items():
        assert out.dtype == dtype, name
        assert out.device == x.device, name
    # float32 results agree with the float64 computation to float32 precision
    ref = _all_outputs(x.double(), y.double(), c["alpha_bar"], c["beta"], c["alpha_bar_prev"])
    for name in outs:
        torch.testing.assert_close(outs[name].double(), ref[name], rtol=1e-5, atol=1e-5, msg=name)
    assert q_sample(x, c["alpha_bar"], generator=g).dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_follows_input_cuda():  # pragma: no cover - only where a GPU exists
    c = SCHEDULES["linear"].at(torch.tensor([3, 500]))
    x = torch.randn(2, 3, 4, 4, device="cuda")
    for name, out in _all_outputs(x, x.clone(), c["alpha_bar"], c["beta"], c["alpha_bar_prev"]).items():
        assert out.device == x.device, name
    assert q_sample(x, c["alpha_bar"]).device == x.device


def test_per_sample_coefficients_broadcast_over_image_dims():
    s = SCHEDULES["linear"]
    t = torch.tensor([0, 10, 500, 999])
    c = s.at(t)
    g = _gen(8)
    x = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64)
    y = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64)
    batched = _all_outputs(x, y, c["alpha_bar"], c["beta"], c["alpha_bar_prev"])
    for i in range(4):
        single = _all_outputs(x[i:i + 1], y[i:i + 1], c["alpha_bar"][i].item(), c["beta"][i].item(),
                              c["alpha_bar_prev"][i].item())
        for name, b in batched.items():
            assert b.shape[0] == 4, name  # per-sample results (q_mean_std's std is [B, 1, 1, 1])
            b_i = b[i:i + 1]
            torch.testing.assert_close(b_i, single[name].expand_as(b_i), rtol=1e-14, atol=1e-14, msg=name)


# --- errors ----------------------------------------------------------------------------------------


def test_errors_alpha_bar_out_of_range():
    x = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"alpha_bar_t must lie in \[0.0, 1.0\], got 1.5"):
        q_sample(x, 1.5)
    with pytest.raises(ValueError, match=r"alpha_bar_t must lie in \[0.0, 1.0\], got \[0.5, -0.1"):
        q_sample(x, torch.tensor([0.5, -0.1]))
    with pytest.raises(ValueError, match=r"alpha_bar_t must lie in \(0.0, 1.0\], got 0.0"):
        x0_from_eps(x, x, 0.0)
    with pytest.raises(ValueError, match=r"alpha_bar_t must lie in \[0.0, 1.0\), got 1.0"):
        eps_from_x0(x, x, 1.0)
    with pytest.raises(ValueError, match=r"alpha_bar_t must lie in \[0.0, 1.0\), got 1.0"):
        score_from_eps(x, 1.0)
    with pytest.raises(ValueError, match="alpha_bar_t must be finite"):
        q_sample(x, float("nan"))
    with pytest.raises(ValueError, match=r"alpha_bar_t must lie in \[0.0, 1.0\]"):
        v_from_eps(x, x, 2.0)
    with pytest.raises(ValueError, match=r"beta_t must lie in \[0.0, 1.0\], got 1.5"):
        q_step(x, 1.5)
    # the posterior: no division by 1 - alpha_bar_t = 0, no sqrt of a negative number
    with pytest.raises(ValueError, match=r"alpha_bar_t must lie in \[0.0, 1.0\), got 1.0"):
        posterior_mean_coefs(1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match=r"alpha_bar_prev must lie in \[0.0, 1.0\], got 1.2"):
        posterior_variance(0.5, 1.2, 0.1)
    with pytest.raises(ValueError, match=r"beta_t must lie in \[0.0, 1.0\], got -0.1"):
        posterior_mean(x, x, 0.5, 0.6, -0.1)


def test_errors_wrong_shapes():
    x = torch.zeros(2, 3, dtype=torch.float64)
    bad = torch.zeros(2, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"eps must have the shape of x \(2, 3\), got \(2, 1\)"):
        q_sample(x, 0.5, eps=bad)
    with pytest.raises(ValueError, match=r"eps must have the shape of x \(2, 3\)"):
        q_step(x, 0.1, eps=bad)
    with pytest.raises(ValueError, match=r"eps must have the shape of x_t \(2, 3\)"):
        x0_from_eps(x, bad, 0.5)
    with pytest.raises(ValueError, match=r"x_0 must have the shape of x_t \(2, 3\)"):
        eps_from_x0(x, bad, 0.5)
    with pytest.raises(ValueError, match=r"eps must have the shape of x_0 \(2, 3\)"):
        v_from_eps(x, bad, 0.5)
    with pytest.raises(ValueError, match=r"v must have the shape of x_t \(2, 3\)"):
        eps_from_v(x, bad, 0.5)
    with pytest.raises(ValueError, match=r"v must have the shape of x_t \(2, 3\)"):
        x0_from_v(x, bad, 0.5)
    with pytest.raises(ValueError, match=r"x_0 must have the shape of x_t \(2, 3\)"):
        posterior_mean(bad, x, 0.5, 0.6, 0.1)
    with pytest.raises(ValueError, match=r"coefficient of shape \(3,\) cannot be broadcast"):
        q_sample(x, torch.tensor([0.1, 0.2, 0.3]))


# --- pinned numbers ------------------------------------------------------------------------------


def test_pinned_posterior_coefficients():
    c = SCHEDULES["linear"].at(499)
    c0, ct = posterior_mean_coefs(c["alpha_bar"], c["alpha_bar_prev"], c["beta"])
    ab, abp, b = c["alpha_bar"].item(), c["alpha_bar_prev"].item(), c["beta"].item()
    assert c0.item() == pytest.approx(math.sqrt(abp) * b / (1 - ab), rel=1e-12)
    assert ct.item() == pytest.approx(math.sqrt(1 - b) * (1 - abp) / (1 - ab), rel=1e-12)
    assert ab == pytest.approx(0.07858724288177824, rel=1e-6)
