"""Tests for diffnotes.schedules: properties first, then pinned numbers, then errors."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffnotes.schedules import (
    Schedule,
    cosine_alpha_bar,
    cosine_schedule,
    linear_schedule,
    make_timesteps,
    quadratic_timesteps,
    random_timesteps,
    respace,
    uniform_timesteps,
)

SCHEDULES = {
    "linear": linear_schedule,
    "cosine": cosine_schedule,
}


def _beta_tilde_formula(alpha_bar: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Ho et al. 2020 eq. 7, written out independently: (1 - ab_{t-1}) / (1 - ab_t) * beta_t."""
    out = torch.empty_like(betas)
    for i in range(betas.numel()):
        ab_prev = 1.0 if i == 0 else alpha_bar[i - 1].item()
        out[i] = (1.0 - ab_prev) / (1.0 - alpha_bar[i].item()) * betas[i].item()
    return out


# --- properties --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_alpha_bar_strictly_decreasing_in_unit_interval(name):
    ab = SCHEDULES[name]().alpha_bar
    assert bool((ab > 0).all()) and bool((ab < 1).all())
    assert bool((ab[1:] < ab[:-1]).all())


@settings(deadline=None, max_examples=25)
@given(
    T=st.integers(1, 2000),
    beta_start=st.floats(1e-5, 0.05),
    beta_end=st.floats(1e-5, 0.05),
)
def test_linear_alpha_bar_properties_hypothesis(T, beta_start, beta_end):
    # Sum of betas <= 100, so alpha_bar >= e^-100-ish: no underflow in float64.
    s = linear_schedule(T, beta_start, beta_end)
    ab = s.alpha_bar
    assert ab.dtype == torch.float64 and ab.shape == (T,)
    assert bool((ab > 0).all()) and bool((ab < 1).all())
    assert bool((ab[1:] < ab[:-1]).all())
    # beta_tilde <= beta and >= 0 everywhere; snr strictly decreasing.
    assert bool((s.beta_tilde <= s.betas).all()) and bool((s.beta_tilde >= 0).all())
    assert bool((s.snr[1:] < s.snr[:-1]).all())
    # alpha_bar is the product of the alphas (eq. 4), checked against a log-sum.
    torch.testing.assert_close(ab.log(), torch.cumsum(torch.log1p(-s.betas), 0), rtol=1e-10, atol=1e-12)


def test_linear_endpoints_exact():
    b = linear_schedule(1000).betas
    assert b.numel() == 1000
    assert b[0].item() == 1e-4 and b[-1].item() == 0.02
    # equally spaced
    d = b[1:] - b[:-1]
    torch.testing.assert_close(d, torch.full_like(d, (0.02 - 1e-4) / 999), rtol=0, atol=1e-15)


@pytest.mark.parametrize("T", [1, 2, 10, 1000, 4000])
def test_cosine_beta_clip_only_at_end(T):
    s = cosine_schedule(T)
    assert bool((s.betas <= 0.999).all())
    clipped = (s.betas == 0.999).nonzero().flatten().tolist()
    assert clipped == [T - 1], clipped
    # without the clip the last beta would be 1 (f(T) = cos^2(pi/2) ~ 0)
    raw = 1 - cosine_alpha_bar(T, T) / cosine_alpha_bar(T - 1, T)
    assert raw.item() > 0.999


@pytest.mark.parametrize("T", [10, 1000])
def test_cosine_alpha_bar_matches_closed_form(T):
    s_ = 0.008
    s = cosine_schedule(T, s=s_)
    t = torch.arange(1, T + 1, dtype=torch.float64)  # schedule index i is the paper's step i+1
    f = torch.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2 / math.cos(s_ / (1 + s_) * math.pi / 2) ** 2
    unclipped = s.betas < 0.999
    torch.testing.assert_close(s.alpha_bar[unclipped], f[unclipped], rtol=1e-12, atol=0)
    torch.testing.assert_close(cosine_alpha_bar(t, T, s_), f, rtol=1e-14, atol=1e-30)
    assert cosine_alpha_bar(0, T).item() == 1.0


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedules_are_float64(name):
    s = SCHEDULES[name]()
    for v in (s.betas, s.alphas, s.alpha_bar, s.alpha_bar_prev, s.beta_tilde, s.snr):
        assert v.dtype == torch.float64
    assert s.original_t.dtype == torch.long
    # inputs in float32 are stored as float64
    s32 = Schedule(torch.linspace(1e-4, 0.02, 10, dtype=torch.float32))
    assert s32.betas.dtype == torch.float64


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_snr_beta_tilde_and_alpha_bar_prev(name):
    s = SCHEDULES[name]()
    assert bool((s.snr[1:] < s.snr[:-1]).all())
    torch.testing.assert_close(s.snr_db, 10 * torch.log10(s.alpha_bar / (1 - s.alpha_bar)))
    assert bool((s.beta_tilde <= s.betas).all())
    assert s.beta_tilde[0].item() == 0.0
    assert s.alpha_bar_prev[0].item() == 1.0
    torch.testing.assert_close(s.alpha_bar_prev[1:], s.alpha_bar[:-1], rtol=0, atol=0)
    torch.testing.assert_close(s.beta_tilde, _beta_tilde_formula(s.alpha_bar, s.betas), rtol=1e-12, atol=0)


def test_at_returns_coefficients_and_casts():
    s = linear_schedule(100)
    t = torch.tensor([0, 5, 99])
    c = s.at(t)
    torch.testing.assert_close(c["alpha_bar"], s.alpha_bar[t])
    torch.testing.assert_close(c["beta_tilde"], s.beta_tilde[t])
    torch.testing.assert_close(c["alpha"], 1 - s.betas[t])
    c32 = s.at(t, like=torch.zeros(3, dtype=torch.float32))
    assert all(v.dtype == torch.float32 for v in c32.values())
    with pytest.raises(ValueError, match=r"t must lie in \[0, 99\]"):
        s.at(100)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 99\]"):
        s.at(torch.tensor([-1, 3]))


# --- respacing -----------------------------------------------------------------------------


def _check_respaced(parent: Schedule, ts_decreasing: torch.Tensor):
    r = respace(parent, ts_decreasing)
    kept = ts_decreasing.flip(0)
    assert r.T == kept.numel()
    # alpha_bar at kept steps is the parent's, up to float64 rounding: a Schedule stores betas,
    # and alpha = 1 - (1 - ratio) loses up to ~1 ulp of 1 (1.1e-16) absolute, plus a few ulps
    # relative from cumprod. So atol 1e-15, rtol 1e-13 (a wrong index would be off by >1e-6).
    torch.testing.assert_close(r.alpha_bar, parent.alpha_bar[kept], rtol=1e-13, atol=1e-15)
    # betas are ratios of consecutive kept alpha_bars
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), parent.alpha_bar[kept][:-1]])
    torch.testing.assert_close(r.betas, 1 - parent.alpha_bar[kept] / ab_prev, rtol=0, atol=0)
    # beta_tilde of the respaced schedule against its own formula
    torch.testing.assert_close(r.beta_tilde, _beta_tilde_formula(r.alpha_bar, r.betas), rtol=1e-12, atol=0)
    assert bool((r.beta_tilde <= r.betas).all())
    # mapping back to the model's timesteps
    assert torch.equal(r.original_t, parent.original_t[kept])
    return r


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("spacing", ["uniform", "quadratic"])
def test_respace_keeps_alpha_bar(name, spacing):
    parent = SCHEDULES[name]()
    ts = make_timesteps(parent.T, 10, spacing)
    r = _check_respaced(parent, ts)
    # increasing input gives the same schedule
    r2 = respace(parent, ts.flip(0))
    assert torch.equal(r.betas, r2.betas) and torch.equal(r.original_t, r2.original_t)


@settings(deadline=None, max_examples=30)
@given(
    name=st.sampled_from(sorted(SCHEDULES)),
    idx=st.sets(st.integers(0, 999), min_size=1, max_size=60),
)
def test_respace_random_subsequences(name, idx):
    parent = SCHEDULES[name]()
    ts = torch.tensor(sorted(idx, reverse=True))
    _check_respaced(parent, ts)


def test_respace_of_respaced_maps_to_original_indices():
    parent = linear_schedule()
    r1 = respace(parent, uniform_timesteps(1000, 100))  # 0, 10, ..., 990
    r2 = respace(r1, uniform_timesteps(100, 10))  # positions 0, 10, ..., 90 of r1
    assert r2.original_t.tolist() == list(range(0, 1000, 100))
    torch.testing.assert_close(r2.alpha_bar, parent.alpha_bar[r2.original_t], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_respace_full_sequence_is_identity(name):
    s = SCHEDULES[name]()
    r = respace(s, torch.arange(s.T - 1, -1, -1))
    assert torch.equal(r.original_t, s.original_t)
    # 1 - ab_t/ab_{t-1} recovers beta_t up to float64 rounding of the ratio (~1e-16 absolute)
    torch.testing.assert_close(r.betas, s.betas, rtol=0, atol=1e-15)
    torch.testing.assert_close(r.alpha_bar, s.alpha_bar, rtol=1e-13, atol=1e-15)


def test_respace_errors():
    s = linear_schedule(100)
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 99\]"):
        respace(s, [100, 50, 0])
    with pytest.raises(ValueError, match="timesteps must be strictly decreasing"):
        respace(s, [50, 80, 0])
    with pytest.raises(ValueError, match="timesteps must be a non-empty"):
        respace(s, [])


# --- timestep selections -------------------------------------------------------------------


def test_uniform_timesteps_pinned():
    assert uniform_timesteps(1000, 10).tolist() == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert uniform_timesteps(1000, 1000).tolist() == list(range(999, -1, -1))
    assert uniform_timesteps(7, 3).tolist() == [4, 2, 0]
    assert uniform_timesteps(10, 4).tolist() == [7, 5, 2, 0]  # floor(i T / S), not i floor(T / S)


def test_quadratic_timesteps_pinned():
    # floor((i * sqrt(800) / 9)^2), i = 0..9
    assert quadratic_timesteps(1000, 10).tolist() == [800, 632, 483, 355, 246, 158, 88, 39, 9, 0]
    assert quadratic_timesteps(1000, 1).tolist() == [0]


@settings(deadline=None, max_examples=40)
@given(T=st.integers(1, 3000), data=st.data())
def test_timesteps_strictly_decreasing_in_range(T, data):
    S = data.draw(st.integers(1, T))
    u = uniform_timesteps(T, S)
    assert u.dtype == torch.long and u.numel() == S
    assert bool((u[1:] < u[:-1]).all()) and u.min() >= 0 and u.max() <= T - 1
    Sq = data.draw(st.integers(1, max(1, int(math.sqrt(0.8 * T)))))
    if Sq <= T:
        q = quadratic_timesteps(T, Sq)
        assert q.numel() == Sq and bool((q[1:] < q[:-1]).all()) and q.min() == 0 and q.max() <= T - 1


def test_quadratic_too_many_steps():
    quadratic_timesteps(1000, 29)  # the largest that works for T=1000
    with pytest.raises(ValueError, match=r"S=30 is too many steps .* T=1000 .* at most 29 steps"):
        quadratic_timesteps(1000, 30)
    with pytest.raises(ValueError, match="too many steps"):
        make_timesteps(1000, 100, "quadratic")


@pytest.mark.parametrize("T", [2, 5, 20, 45, 80, 100, 333, 1000])
def test_quadratic_error_names_the_largest_valid_S(T):
    # brute force: the largest S that gives distinct indices (the first gap is 0.8T/(S-1)^2, so
    # no S beyond 2 + sqrt(0.8T) can work; try a few more than that)
    ok = []
    for S in range(1, min(T, 5 + int(math.sqrt(0.8 * T))) + 1):
        try:
            quadratic_timesteps(T, S)
            ok.append(S)
        except ValueError:
            pass
    s_max = max(ok)
    assert ok == list(range(1, s_max + 1))  # valid S form a prefix
    if s_max < T:
        with pytest.raises(ValueError, match=rf"at most {s_max} steps"):
            quadratic_timesteps(T, s_max + 1)


def test_timesteps_errors():
    with pytest.raises(ValueError, match=r"S must be an integer in \[1, 10\], got 11"):
        uniform_timesteps(10, 11)
    with pytest.raises(ValueError, match=r"S must be an integer in \[1, 10\], got 0"):
        quadratic_timesteps(10, 0)
    with pytest.raises(ValueError, match="spacing must be 'uniform' or 'quadratic', got 'cubic'"):
        make_timesteps(10, 5, "cubic")


# --- pinned numbers ------------------------------------------------------------------------


def test_pinned_numbers():
    lin = linear_schedule(1000)
    assert lin.alpha_bar[-1].item() == pytest.approx(4.0358297653756754e-05, rel=1e-6)
    assert lin.alpha_bar[0].item() == pytest.approx(1 - 1e-4, rel=1e-15)
    cos = cosine_schedule(1000)
    assert cos.alpha_bar[-1].item() == pytest.approx(2.4288e-09, rel=1e-4)
    assert cos.betas[-2].item() == pytest.approx(0.75, rel=1e-3)
    assert lin.T == 1000 and "linear" in repr(lin)


# --- validation ----------------------------------------------------------------------------


def test_schedule_validation_errors():
    with pytest.raises(ValueError, match="betas must be a non-empty 1-D sequence"):
        Schedule(torch.zeros(0, dtype=torch.float64))  # T = 0
    with pytest.raises(ValueError, match="betas must be a non-empty 1-D sequence"):
        Schedule(torch.full((2, 2), 0.1))
    with pytest.raises(ValueError, match=r"betas must lie in \(0.0, 1.0\]"):
        Schedule([0.1, 0.0, 0.2])
    with pytest.raises(ValueError, match=r"betas must lie in \(0.0, 1.0\]"):
        Schedule([0.1, 1.5])
    with pytest.raises(ValueError, match=r"betas must lie in \(0.0, 1.0\]"):
        Schedule([0.1, -0.2])
    with pytest.raises(ValueError, match="betas must be finite"):
        Schedule([0.1, float("nan")])
    with pytest.raises(ValueError, match="betas must be large enough that 1 - beta < 1"):
        Schedule([1e-17, 0.1])
    with pytest.raises(ValueError, match=r"original_t must have the same length as betas \(3\), got 2"):
        Schedule([0.1, 0.2, 0.3], original_t=[0, 5])
    with pytest.raises(ValueError, match="original_t must be strictly increasing"):
        Schedule([0.1, 0.2, 0.3], original_t=[0, 5, 5])
    with pytest.raises(ValueError, match="original_t must hold indices >= 0"):
        Schedule([0.1, 0.2], original_t=[-1, 5])
    # beta = 1 is allowed (zero terminal SNR); nothing is NaN
    s = Schedule([0.1, 1.0])
    assert s.alpha_bar[-1].item() == 0.0 and bool(torch.isfinite(s.beta_tilde).all())


def test_constructor_validation_errors():
    with pytest.raises(ValueError, match=r"T must be an integer in \[1, inf\], got 0"):
        linear_schedule(0)
    with pytest.raises(ValueError, match=r"T must be an integer in \[1, inf\], got 0"):
        cosine_schedule(0)
    with pytest.raises(ValueError, match="T must be an integer, got 2.5"):
        linear_schedule(2.5)
    with pytest.raises(ValueError, match=r"beta_end must lie in \(0.0, 1.0\], got 1.2"):
        linear_schedule(10, 1e-4, 1.2)
    with pytest.raises(ValueError, match=r"beta_start must lie in \(0.0, 1.0\], got 0.0"):
        linear_schedule(10, 0.0, 0.02)
    with pytest.raises(ValueError, match=r"max_beta must lie in \(0.0, 1.0\], got 1.5"):
        cosine_schedule(10, max_beta=1.5)
    with pytest.raises(ValueError, match=r"s must lie in \[0.0, inf\), got -0.1"):
        cosine_schedule(10, s=-0.1)


def test_schedule_length_mismatch_between_schedules():
    # A respaced schedule cannot be indexed with the parent's indices, and timesteps of a longer
    # schedule are rejected when respacing a shorter one.
    short = linear_schedule(50)
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 49\] for a schedule with T=50"):
        respace(short, uniform_timesteps(1000, 10))
    r = respace(linear_schedule(1000), uniform_timesteps(1000, 10))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 9\]"):
        r.at(900)


# --------------------------------------------------------------------------- random subsequences
@settings(max_examples=60, deadline=None)
@given(T=st.integers(1, 400), data=st.data())
def test_random_timesteps_properties(T, data):
    S = data.draw(st.integers(1, T))
    seed = data.draw(st.integers(0, 2**31 - 1))
    ts = random_timesteps(T, S, generator=torch.Generator().manual_seed(seed))
    assert ts.dtype == torch.long and ts.shape == (S,)
    assert bool((ts[1:] < ts[:-1]).all())                 # strictly decreasing: distinct
    assert int(ts.min()) >= 0 and int(ts.max()) == T - 1  # starts at the noisiest index
    if S >= 2:
        assert int(ts[-1]) == 0                           # ends at the least noisy index
    # a sampler and respace accept it, and the respaced schedule keeps the parent's alpha_bar
    parent = linear_schedule(T)
    assert torch.allclose(respace(parent, ts).alpha_bar, parent.alpha_bar[ts.flip(0)], rtol=1e-12, atol=0)


def test_random_timesteps_is_reproducible_and_random():
    a = random_timesteps(1000, 10, generator=torch.Generator().manual_seed(3))
    b = random_timesteps(1000, 10, generator=torch.Generator().manual_seed(3))
    c = random_timesteps(1000, 10, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, uniform_timesteps(1000, 10))
    assert random_timesteps(5, 5).tolist() == [4, 3, 2, 1, 0]  # S = T: every index
    assert random_timesteps(10, 1).tolist() == [9]
    assert random_timesteps(10, 2).tolist() == [9, 0]


def test_random_timesteps_inner_indices_are_uniform():
    # Each of 1..T-2 is kept with probability (S-2)/(T-2); with 4000 draws of T=12, S=5 the count of
    # every index is Binomial(4000, 0.3): mean 1200, sd 29. A draw that favoured some indices
    # (e.g. sorting before sampling, or never picking T-2) would move a count by far more than 5 sd.
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(12, dtype=torch.long)
    for _ in range(4000):
        counts[random_timesteps(12, 5, generator=gen)] += 1
    assert counts[0] == counts[11] == 4000
    assert bool(((counts[1:11] - 1200).abs() < 5 * 29).all()), counts.tolist()


def test_random_timesteps_errors():
    with pytest.raises(ValueError, match="S must be an integer in"):
        random_timesteps(10, 11)
    with pytest.raises(ValueError, match="S must be an integer in"):
        random_timesteps(10, 0)
    with pytest.raises(ValueError, match="T must be an integer in"):
        random_timesteps(0, 1)
    with pytest.raises(ValueError, match="T must be an integer"):
        random_timesteps(10.5, 2)
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        random_timesteps(10, 3, generator=0)
