"""Mutants for chapter 4 (the note's buggy DDIM sampler): the package functions its checks rest on."""
import torch

from mutation_harness import Mutant

NB = "04_buggy_ddim"
# setup, the note's code as written, and the switchable step/loop
BASE = ("384c11af", "d3b3ef6e", "b7e2d9a4", "d5e6f7a8", "e8f9a0b1", "0b1c2d3e", "1c2d3e4f")
GUARD = BASE + ("40dd9a37",)                                   # note_loop(fixed=SLIPS) == samplers.sample_ddim
SYMPY = ("384c11af", "dbae30e9", "6a7b8c9d")                  # c1, mean, variance, the eta == 0 branch
MC_STEP = BASE + ("dbae30e9", "3aaa1fd2", "374aa9c7", "717e3cca")   # one-step Monte Carlo vs SymPy
# a sign flip of the direction term keeps every marginal; only the "eta = 1 is DDPM" check sees it
CHECKLIST = BASE + ("40dd9a37", "dbae30e9", "3aaa1fd2", "374aa9c7", "f5d6001b", "0d1e2f3a", "7048ab12",
                    "4c5d6e7f", "222bd3d7")


def _sigma_without_root(f):
    # eq. 16 with the square root of (1 - ab/abp) dropped
    def ddim_sigma(alpha_bar_t, alpha_bar_prev, eta):
        s = f(alpha_bar_t, alpha_bar_prev, eta)
        ratio = 1 - torch.as_tensor(alpha_bar_t, dtype=torch.float64) / torch.as_tensor(alpha_bar_prev, dtype=torch.float64)
        return s * ratio.sqrt()
    return ddim_sigma


def _step_direction_sign(f):
    # the direction term sqrt(1 - abp - sigma^2) eps_hat enters with a minus sign
    def ddim_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, *, sigma_t=0.0, **kw):
        out = f(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, sigma_t=sigma_t, **kw)
        abp = torch.as_tensor(alpha_bar_prev, dtype=torch.float64)
        c = (1 - abp - torch.as_tensor(sigma_t, dtype=torch.float64) ** 2).clamp_min(0).sqrt()
        return out - 2 * c * eps_hat
    return ddim_step


def _loop_stops_early(f):
    # the loop's range off by one: the last visited index (the step to alpha_bar = 1) is skipped
    return lambda model, x, timesteps, **kw: f(model, x, timesteps[:-1], **kw)


def _uniform_off_by_one(f):
    return lambda T, S: f(T, S) + 1


def _ddpm_noise_sign(f):
    def ddpm_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, *, noise=None, **kw):
        return f(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, noise=None if noise is None else -noise * 1.01, **kw)
    return ddpm_step


def _eps_from_x0_no_root(f):
    def eps_from_x0(x_t, x_0, alpha_bar_t):
        ab = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
        return f(x_t, x_0, alpha_bar_t) * (1 - ab).sqrt()      # divides by 1 - ab instead of its root
    return eps_from_x0


def _expectation_second_moment(f):
    # E[eps^2] taken as 2 instead of 1 (a wrong Gaussian moment)
    def gaussian_expectation(expr, noises):
        import sympy as sp
        return f(sp.sympify(expr).subs({n: sp.sqrt(2) * n for n in noises}), noises)
    return gaussian_expectation


MUTANTS = [
    Mutant("ch4 ddim_sigma: root of (1 - ab/abp) dropped", NB, GUARD, "samplers.ddim_sigma", _sigma_without_root),
    Mutant("ch4 ddim_step: sign of the direction term", NB, CHECKLIST, "samplers.ddim_step", _step_direction_sign),
    Mutant("ch4 sample_ddim: last step skipped", NB, GUARD, "samplers.sample_ddim", _loop_stops_early),
    Mutant("ch4 uniform_timesteps: indices off by one", NB, GUARD, "schedules.uniform_timesteps", _uniform_off_by_one),
    Mutant("ch4 ddpm_step: noise sign and scale", NB, CHECKLIST, "samplers.ddpm_step", _ddpm_noise_sign),
    Mutant("ch4 eps_from_x0: root of 1 - ab dropped", NB, MC_STEP, "forward.eps_from_x0", _eps_from_x0_no_root),
    Mutant("ch4 gaussian_expectation: E[eps^2] = 2", NB, SYMPY, "derive.gaussian_expectation", _expectation_second_moment),
]
