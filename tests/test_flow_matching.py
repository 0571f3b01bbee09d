"""Tests for diffnotes.flow_matching: the straight path, the conversions, the exact marginal velocity
(against Monte Carlo and closed forms), the samplers' order, straightness, reflow and the DDIM bridge.

Monte-Carlo checks use fixed seeds and a tolerance of Z standard errors, Z = 5.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffnotes import flow_matching as fm
from diffnotes import flow_net
from diffnotes.oracles import Gaussian, GaussianMixture, PointSet
from diffnotes.samplers import sample_ddim
from diffnotes.schedules import cosine_alpha_bar, linear_schedule, uniform_timesteps

F64 = torch.float64
Z = 5.0


def gen(seed):
    return torch.Generator().manual_seed(seed)


def mixture():
    return GaussianMixture([0.3, 0.3, 0.4], [[-2.0, -1.5], [2.0, -1.5], [0.0, 2.5]],
                           [[[0.2, 0.05], [0.05, 0.1]], [[0.15, 0.0], [0.0, 0.15]], [[0.1, -0.03], [-0.03, 0.3]]])


def gaussian():
    return Gaussian([0.5, -1.0], [[0.6, 0.2], [0.2, 0.3]])


# ------------------------------------------------------------------ the conditional path
def test_path_ends_at_data_and_noise_and_moves_with_the_conditional_velocity():
    x0, eps = torch.randn(5, 3, generator=gen(0), dtype=F64), torch.randn(5, 3, generator=gen(1), dtype=F64)
    assert torch.equal(fm.conditional_path(x0, eps, 0.0), x0)
    assert torch.equal(fm.conditional_path(x0, eps, 1.0), eps)
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=F64, requires_grad=True)
    xt = fm.conditional_path(x0, eps, t)
    # d/dt of each coordinate, by autograd: the constant eps - x0
    grads = torch.stack([torch.autograd.grad(xt[:, j].sum(), t, retain_graph=True)[0] for j in range(3)], 1)
    torch.testing.assert_close(grads, fm.conditional_velocity(x0, eps), rtol=0, atol=1e-15)


def test_sample_path_draws_from_the_generator_and_returns_a_consistent_triple():
    x0 = torch.randn(4, 2, generator=gen(2), dtype=F64)
    xt, eps, u = fm.sample_path(x0, 0.3, generator=gen(5))
    torch.testing.assert_close(eps, torch.randn(4, 2, generator=gen(5), dtype=F64))
    torch.testing.assert_close(xt, 0.7 * x0 + 0.3 * eps)
    torch.testing.assert_close(u, eps - x0)


# ------------------------------------------------------------------ conversions
@settings(max_examples=40, deadline=None)
@given(t=st.floats(0.01, 0.99), seed=st.integers(0, 10_000))
def test_conversions_recover_x0_eps_and_each_other(t, seed):
    g = gen(seed)
    x0, eps = torch.randn(6, 2, generator=g, dtype=F64), torch.randn(6, 2, generator=g, dtype=F64)
    xt, v = fm.conditional_path(x0, eps, t), fm.conditional_velocity(x0, eps)
    torch.testing.assert_close(fm.x0_from_velocity(xt, v, t), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(fm.eps_from_velocity(xt, v, t), eps, rtol=0, atol=1e-12)
    torch.testing.assert_close(fm.velocity_from_x0(xt, x0, t), v, rtol=0, atol=1e-10 / t)
    torch.testing.assert_close(fm.velocity_from_eps(xt, eps, t), v, rtol=0, atol=1e-10 / (1 - t))
    s = -eps / t  # the conditional score of N(x; (1-t) x0, t^2 I)
    torch.testing.assert_close(fm.score_from_velocity(xt, v, t), s, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(fm.velocity_from_score(xt, s, t), v, rtol=1e-9, atol=1e-9)


def test_conversions_take_a_time_per_sample_and_keep_dtype():
    x = torch.randn(3, 2, 2, generator=gen(3))
    v = torch.randn(3, 2, 2, generator=gen(4))
    t = torch.tensor([0.2, 0.5, 0.9])
    out = fm.x0_from_velocity(x, v, t)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out[1], x[1] - 0.5 * v[1])


@pytest.mark.parametrize("t", [0.1, 0.4, 0.75, 0.95])
def test_marginal_velocity_matches_the_oracle_score_and_noise_prediction(t):
    mix = mixture()
    x = 2 * torch.randn(50, 2, generator=gen(6), dtype=F64)
    v = fm.marginal_velocity(mix, x, t)
    torch.testing.assert_close(v, fm.velocity_from_score(x, mix.score(x, 1 - t, t), t), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(v, fm.velocity_from_eps(x, mix.eps(x, 1 - t, t), t), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(fm.x0_from_velocity(x, v, t), mix.denoise(x, 1 - t, t), rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------ the exact marginal velocity
def _mc_velocity(oracle, x, t, n, seed):
    """Self-normalised importance estimate of E[eps - x0 | x_t = x]: x0 from the data, weighted by the
    likelihood N(x; (1-t) x0, t^2 I); returns the estimate and its delta-method standard error."""
    x0 = oracle.sample(n, generator=gen(seed))                      # [n, D]
    d = x[:, None, :] - (1 - t) * x0[None]                          # [B, n, D]
    logw = -(d**2).sum(-1) / (2 * t**2)
    w = torch.softmax(logw, dim=1)                                  # normalised weights [B, n]
    u = d / t - x0[None]                                            # eps - x0 given x and x0
    est = (w[..., None] * u).sum(1)
    se = ((w[..., None] ** 2) * (u - est[:, None]) ** 2).sum(1).sqrt()
    return est, se


@pytest.mark.parametrize("t", [0.35, 0.6, 0.9, 1.0])
def test_marginal_velocity_of_the_mixture_agrees_with_monte_carlo(t):
    mix = mixture()
    x = mix.sample(8, generator=gen(7)) * (1 - t) + t * torch.randn(8, 2, generator=gen(8), dtype=F64)
    est, se = _mc_velocity(mix, x, t, 200_000, seed=9)
    v = fm.marginal_velocity(mix, x, t)
    z = ((v - est).abs() / se).max().item()
    assert z < Z, f"{z:.2f} standard errors off"
    # and the estimate is informative: its error bars are well below the size of the velocity
    assert se.max() < 0.05 * v.abs().max()


def test_marginal_velocity_at_t1_is_x_minus_the_data_mean():
    mix = mixture()
    x = torch.randn(5, 2, generator=gen(10), dtype=F64)
    torch.testing.assert_close(fm.marginal_velocity(mix, x, 1.0), x - mix.mean, rtol=0, atol=1e-12)


def test_marginal_velocity_of_a_1d_gaussian_is_the_derivative_of_its_affine_flow():
    mu, s2 = 0.7, 0.3
    g = Gaussian([mu], [[s2]])
    t = torch.tensor([0.05, 0.3, 0.6, 0.99], dtype=F64)
    x = torch.tensor([[-1.0], [0.2], [1.5], [0.4]], dtype=F64)
    sig = torch.sqrt((1 - t) ** 2 * s2 + t**2)
    dsig = (-(1 - t) * s2 + t) / sig
    z = (x[:, 0] - (1 - t) * mu) / sig
    expected = -mu + dsig * z  # d/dt [(1-t) mu + sigma_t z] at fixed z
    torch.testing.assert_close(fm.marginal_velocity(g, x, t)[:, 0], expected, rtol=1e-12, atol=1e-12)


def test_velocity_model_keeps_float32_and_matches_the_function():
    mix = mixture()
    x = torch.randn(4, 2, generator=gen(11))
    v = fm.velocity_model(mix)(x, torch.full((4,), 0.5))
    assert v.dtype == torch.float32
    torch.testing.assert_close(v, fm.marginal_velocity(mix, x.double(), 0.5).float())


# ------------------------------------------------------------------ samplers
def _gaussian_exact_end(g, x1):
    """The flow map of Gaussian data is affine: the end of the ODE from x1 is mu + Sigma^{1/2} x1."""
    root = g._U @ torch.diag(g._lam.sqrt()) @ g._U.T
    return g.mean + x1 @ root.T


def test_euler_on_a_gaussian_converges_at_order_one_and_heun_at_order_two():
    g = gaussian()
    x1 = torch.randn(200, 2, generator=gen(12), dtype=F64)
    exact = _gaussian_exact_end(g, x1)
    v = fm.velocity_model(g)
    err = {n: (fm.sample_euler(v, x1, fm.time_grid(n)) - exact).norm(dim=1).mean().item() for n in (16, 32, 64, 128)}
    orders = [math.log2(err[n] / err[2 * n]) for n in (16, 32, 64)]
    assert all(abs(p - 1) < 0.1 for p in orders), orders
    herr = {n: (fm.sample_heun(v, x1, fm.time_grid(n)) - exact).norm(dim=1).mean().item() for n in (16, 32, 64)}
    horders = [math.log2(herr[n] / herr[2 * n]) for n in (16, 32)]
    assert all(abs(p - 2) < 0.25 for p in horders), horders
    assert herr[64] < 5e-4 < err[128]


def test_a_point_mass_flows_in_straight_lines_one_euler_step_is_exact():
    y = torch.tensor([[1.5, -0.5]], dtype=F64)
    pm = PointSet(y)
    x1 = torch.randn(20, 2, generator=gen(13), dtype=F64)
    v = fm.velocity_model(pm)
    torch.testing.assert_close(fm.sample_euler(v, x1, fm.time_grid(1)), y.expand(20, 2), rtol=0, atol=1e-12)
    vs = []
    fm.sample_euler(v, x1, fm.time_grid(10), callback=lambda d: vs.append(d.v))
    assert fm.straightness(vs, fm.time_grid(10)).max() < 1e-20


def test_callback_reports_each_step_and_x0_hat():
    mix = mixture()
    seen = []
    x1 = torch.randn(3, 2, generator=gen(14), dtype=F64)
    out = fm.sample_euler(fm.velocity_model(mix), x1, fm.time_grid(4), callback=seen.append)
    assert [d.i for d in seen] == [0, 1, 2, 3] and [d.t for d in seen] == [1.0, 0.75, 0.5, 0.25]
    assert [d.t_next for d in seen] == [0.75, 0.5, 0.25, 0.0]
    torch.testing.assert_close(seen[-1].x_next, out)
    torch.testing.assert_close(seen[1].x0_hat, mix.denoise(seen[1].x, 0.25, 0.75))


def test_heun_last_step_into_zero_is_an_euler_step():
    mix = mixture()
    x = torch.randn(3, 2, generator=gen(15), dtype=F64)
    v = fm.velocity_model(mix)
    out = fm.sample_heun(v, x, [0.2, 0.0])
    torch.testing.assert_close(out, x - 0.2 * fm.marginal_velocity(mix, x, 0.2))


# ------------------------------------------------------------------ straightness and reflow
def test_straightness_is_the_weighted_spread_of_the_velocities():
    ts = torch.tensor([1.0, 0.7, 0.2, 0.0], dtype=F64)
    vs = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[2.0, 2.0]]], dtype=F64)  # N=3, B=1
    w = torch.tensor([0.3, 0.5, 0.2], dtype=F64)
    mean = (w[:, None] * vs[:, 0]).sum(0)
    by_hand = sum(float(w[i]) * float(((mean - vs[i, 0]) ** 2).sum()) for i in range(3))
    assert fm.straightness(vs, ts).item() == pytest.approx(by_hand, rel=1e-14)
    assert fm.straightness(torch.ones(3, 4, 2, dtype=F64), ts).abs().max() == 0


def test_reflow_with_a_kernel_velocity_makes_few_step_euler_closer_to_the_exact_flow():
    mix = mixture()
    v = fm.velocity_model(mix)
    fine = fm.time_grid(100)
    x1_pairs = torch.randn(1500, 2, generator=gen(16), dtype=F64)
    x0_pairs, _ = fm.reflow_pairs(v, x1_pairs, fine)
    v2 = fm.kernel_velocity(x0_pairs, x1_pairs, bandwidth=0.1)
    x1 = torch.randn(300, 2, generator=gen(17), dtype=F64)  # fresh noise, not the pairs'
    exact = fm.sample_heun(v, x1, fine)
    for n in (1, 2, 4):
        before = (fm.sample_euler(v, x1, fm.time_grid(n)) - exact).norm(dim=1).mean()
        after = (fm.sample_euler(v2, x1, fm.time_grid(n)) - exact).norm(dim=1).mean()
        assert after < 0.5 * before, (n, float(before), float(after))
    S = lambda model: fm.straightness(_velocities(model, x1[:100], fm.time_grid(50)), fm.time_grid(50)).mean()
    assert S(v2) < 0.1 * S(v)


def _velocities(model, x, ts):
    vs = []
    fm.sample_euler(model, x, ts, callback=lambda d: vs.append(d.v))
    return vs


def test_kernel_velocity_reproduces_the_pairs_displacement_on_its_own_points():
    x0 = torch.tensor([[0.0, 0.0], [5.0, 5.0]], dtype=F64)
    x1 = torch.tensor([[1.0, 0.0], [5.0, 3.0]], dtype=F64)
    v2 = fm.kernel_velocity(x0, x1, bandwidth=0.05)
    t = torch.tensor([0.3, 0.8], dtype=F64)
    pts = (1 - t[:, None]) * x0 + t[:, None] * x1
    torch.testing.assert_close(v2(pts, t), x1 - x0, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ the bridge to DDIM
def test_flow_and_ddim_states_convert_both_ways():
    ab = torch.tensor([0.999, 0.5, 0.01], dtype=F64)
    x = torch.randn(3, 2, generator=gen(18), dtype=F64)
    xf, t = fm.flow_from_ddim(x, ab)
    back, ab_back = fm.ddim_from_flow(xf, t)
    torch.testing.assert_close(back, x)
    torch.testing.assert_close(ab_back, ab)
    # same noise-to-signal ratio: t / (1 - t) = sqrt((1 - ab) / ab)
    torch.testing.assert_close(t / (1 - t), torch.sqrt((1 - ab) / ab))


def test_ddim_is_flow_euler_on_the_mapped_grid_to_round_off():
    mix = mixture()
    sched = linear_schedule(1000)
    ts = uniform_timesteps(1000, 20)
    xT = torch.randn(64, 2, generator=gen(19), dtype=F64)
    ddim = sample_ddim(mix.eps_model(sched), xT, ts, schedule=sched)
    ab = sched.alpha_bar[ts]
    x_start, t_start = fm.flow_from_ddim(xT, ab[0])
    grid = torch.cat([fm.flow_time_from_alpha_bar(ab), torch.zeros(1, dtype=F64)])
    flow = fm.sample_euler(fm.velocity_model(mix), x_start, grid)
    torch.testing.assert_close(flow, ddim, rtol=0, atol=1e-10)  # at t = 0 (alpha_bar = 1) the states coincide


def test_ddim_and_flow_heun_on_their_own_grids_reach_the_same_endpoint():
    mix = mixture()
    sched = linear_schedule(1000)
    xT = torch.randn(64, 2, generator=gen(20), dtype=F64)
    x_start, t_start = fm.flow_from_ddim(xT, sched.alpha_bar[-1])
    flow = fm.sample_heun(fm.velocity_model(mix), x_start, fm.time_grid(200, t_start=float(t_start)))
    gaps = []
    for S in (100, 1000):
        ts = torch.arange(999, -1, -(1000 // S))  # S steps starting at index 999, where x_T sits
        ddim = sample_ddim(mix.eps_model(sched), xT, ts, schedule=sched)
        gaps.append((ddim - flow).norm(dim=1).mean().item())
    assert gaps[1] < 0.3 * gaps[0] and gaps[1] < 0.02, gaps


# ------------------------------------------------------------------ loss weighting
def test_flow_matching_weight_is_t_over_one_minus_t():
    t = torch.tensor([0.01, 0.2, 0.5, 0.8, 0.99], dtype=F64)
    torch.testing.assert_close(fm.flow_matching_weight(fm.log_snr(t)), t / (1 - t))
    # and it is the FM integrand 1/(1-t)^2 times 2 dt/dlambda (numerical derivative)
    h = 1e-6
    dt_dlam = -2 * h / (fm.log_snr(t + h) - fm.log_snr(t - h))
    torch.testing.assert_close(fm.flow_matching_weight(fm.log_snr(t)), 2 * dt_dlam / (1 - t) ** 2, rtol=1e-6, atol=0)


def test_l_simple_weight_of_a_cosine_schedule_is_sech_over_pi():
    from diffnotes.schedules import Schedule

    T = 4000
    ab = cosine_alpha_bar(torch.arange(1, T + 1, dtype=F64), T, s=0.0)[:-1]  # drop alpha_bar = 0 at the end
    ab = ab.clamp(1e-12, 1 - 1e-12)
    betas = 1 - ab / torch.cat([torch.ones(1, dtype=F64), ab[:-1]])
    lam, w = fm.l_simple_weight(Schedule(betas))
    mid = lam.abs() < 6
    torch.testing.assert_close(w[mid], 1 / torch.cosh(lam[mid] / 2) / math.pi, rtol=2e-3, atol=0)


# ------------------------------------------------------------------ errors name the argument
@pytest.mark.parametrize("call,match", [
    (lambda: fm.conditional_path(torch.zeros(2, 2), torch.zeros(2, 2), 1.5), "t must lie in"),
    (lambda: fm.conditional_path(torch.zeros(2, 2), torch.zeros(2, 3), 0.5), "eps must have the shape"),
    (lambda: fm.velocity_from_x0(torch.zeros(2, 2), torch.zeros(2, 2), 0.0), "t must lie in"),
    (lambda: fm.velocity_from_eps(torch.zeros(2, 2), torch.zeros(2, 2), 1.0), "t must lie in"),
    (lambda: fm.marginal_velocity(mixture(), torch.zeros(2, 2), 0.0), "t must lie in"),
    (lambda: fm.marginal_velocity("gmm", torch.zeros(2, 2), 0.5), "oracle must be"),
    (lambda: fm.time_grid(0), "n must be"),
    (lambda: fm.sample_euler(lambda x, t: x, torch.zeros(2, 2), [0.0, 1.0]), "strictly decreasing"),
    (lambda: fm.sample_euler(lambda x, t: x[:1], torch.zeros(2, 2), [1.0, 0.0]), "model output"),
    (lambda: fm.straightness(torch.zeros(3, 2, 2), [1.0, 0.0]), "timesteps must have"),
    (lambda: fm.kernel_velocity(torch.zeros(3, 2), torch.zeros(3, 2), bandwidth=0.0), "bandwidth must lie"),
    (lambda: fm.reflow_pairs(lambda x, t: x, torch.zeros(2, 2), [1.0, 0.0], method="rk4"), "method must be"),
    (lambda: fm.flow_time_from_alpha_bar(0.0), "alpha_bar must lie"),
    (lambda: fm.ddim_from_flow(torch.zeros(2, 2), 1.0), "t must lie"),
    (lambda: fm.log_snr(0.0), "t must lie"),
])
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------ a velocity network for images
def _undo_preconditioning(oracle, schedule):
    """A "network" that inverts call_velocity_net's input map by an independent route (the schedule's log-SNR
    interpolated at the real index tau, then t = 1 / (1 + exp(lambda / 2))) and returns the exact velocity."""
    lam_s = torch.log(schedule.alpha_bar / (1 - schedule.alpha_bar)).to(F64)

    def net(x_in, tau):
        tau = tau.to(F64)
        lo = tau.floor().long().clamp(0, schedule.T - 2)
        lam = lam_s[lo] + (tau - lo) * (lam_s[lo + 1] - lam_s[lo])
        t = 1.0 / (1.0 + torch.exp(lam / 2))
        x = x_in * torch.sqrt((1 - t) ** 2 + t**2)[:, None]
        return fm.marginal_velocity(oracle, x, t)

    return net


def test_network_time_is_the_inverse_of_the_ddim_bridge_and_clamps_at_the_ends():
    sched = linear_schedule(1000)
    idx = torch.tensor([0, 1, 17, 250, 500, 998, 999])
    tau = flow_net.network_time(fm.flow_time_from_alpha_bar(sched.alpha_bar[idx]), sched)
    assert torch.allclose(tau, idx.to(F64), atol=1e-8)
    # halfway in log-SNR between two steps is halfway in index
    lam = torch.log(sched.alpha_bar / (1 - sched.alpha_bar)).to(F64)
    mid = (lam[300] + lam[301]) / 2
    assert flow_net.network_time(1.0 / (1.0 + torch.exp(mid / 2)), sched).item() == pytest.approx(300.5, abs=1e-8)
    # beyond the schedule's noise levels: the end steps; monotone in between
    assert flow_net.network_time(torch.tensor([0.0, 1e-6, 1.0 - 1e-9, 1.0]), sched).tolist() == [0.0, 0.0, 999.0, 999.0]
    grid = flow_net.network_time(torch.linspace(0, 1, 201, dtype=F64), sched)
    assert bool((grid[1:] >= grid[:-1]).all())
    with pytest.raises(ValueError, match="t"):
        flow_net.network_time(1.5, sched)


def test_velocity_net_with_the_inverse_network_is_the_exact_velocity():
    """call_velocity_net scales the input by 1/sqrt((1-t)^2+t^2) and asks for the index of the same log-SNR:
    a network that undoes both by the independent route gives back the exact velocity, to round-off, at times
    inside the schedule's range (t from 0.02 to 0.99 for the linear schedule)."""
    sched, g = linear_schedule(1000), gaussian()
    model = flow_net.VelocityNet(_undo_preconditioning(g, sched), sched)
    x = torch.randn(64, 2, generator=gen(60), dtype=F64)
    for t in (0.05, 0.3, 0.5, 0.8, 0.99):
        assert torch.allclose(model(x, t), fm.marginal_velocity(g, x, t), atol=1e-9), t
    t_b = torch.rand(64, generator=gen(61), dtype=F64) * 0.9 + 0.05
    assert torch.allclose(model(x, t_b), fm.marginal_velocity(g, x, t_b), atol=1e-9)
    with pytest.raises(ValueError, match="shape"):
        model(x, torch.full((3,), 0.5, dtype=F64))


def test_train_step_flow_is_the_flow_matching_loss_on_the_preconditioned_input():
    """objective='flow': t ~ U(0, 1) then eps from the generator, the network sees x_t / sqrt((1-t)^2 + t^2) at
    network_time(t), and the loss is the mean squared error to eps - x0 (recomputed here from the same draws)."""
    from diffnotes.train import train_step

    sched = linear_schedule(1000)
    seen = {}

    class Scale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(0.5, dtype=F64))

        def forward(self, x, tau):
            seen["x"], seen["tau"] = x.detach().clone(), tau.detach().clone()
            return self.w * x

    net = Scale()
    x0 = torch.randn(6, 3, 4, 4, generator=gen(62), dtype=F64)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    loss = train_step(net, x0, sched, opt, generator=gen(63), objective="flow")
    g = gen(63)
    t = torch.rand(6, generator=g, dtype=F64)
    eps = torch.randn(x0.shape, generator=g, dtype=F64)
    x_t = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * eps
    x_in = x_t / torch.sqrt((1 - t) ** 2 + t**2)[:, None, None, None]
    assert torch.allclose(seen["x"], x_in, atol=1e-12)
    assert torch.allclose(seen["tau"].to(F64), flow_net.network_time(t, sched), atol=1e-3)  # passed as float32
    assert loss.item() == pytest.approx(((0.5 * x_in - (eps - x0)) ** 2).mean().item(), rel=1e-10)
    with pytest.raises(ValueError, match="objective"):
        train_step(net, x0, sched, opt, generator=gen(63), objective="v")
    with pytest.raises(ValueError, match="t_sampling"):
        train_step(net, x0, sched, opt, generator=gen(63), objective="flow", t_sampling="log_normal")
