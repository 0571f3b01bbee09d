"""Mutants for chapter 5 (score-based SDEs): each breaks one checked function of ``diffnotes.sde`` or
``diffnotes.score_matching``; the listed cells of lesson ``05_score_sde``, lesson ``05b_score_sde_samplers`` or
their appendix must then fail their check."""
import inspect
import textwrap

from mutation_harness import Mutant

NB = "05_score_sde"            # lesson 5: the SDE view
NB_B = "05b_score_sde_samplers"  # lesson 5b: the samplers
NB_APP = "appendix/05_score_sde_appendix"  # the long verification of both lessons
SETUP = ("acca0135",)         # imports and the helpers (show_aligned, bound_text)
SYMPY_T = "94e80ee2"          # t, Delta_t, x, z; section 1's table checks_chain; the DDPM limits
VE_LIMIT = "b5a32ce3"         # diff2_ve, sigma_f, g_ve_paper, sigma_min / sigma_max symbols
LIMIT_CHECK = "9c89e044"      # drift and diffusion vs the derived f, g
MOMENT_ODE = "78c8c17b"       # the moment ODEs; section 2's table checks_moments
MOMENTS = ("19f1c2c0",)       # solve_moments, B; then sdes and moments
CLOSED = "577d6631"           # closed forms
MARGINALS = "3404ac35"        # marginal_coefs vs the ODE solutions (defines concrete)
FOKKER = "a161d78e"           # Fokker-Planck; section 3's table checks_reverse
B_SETUP = ("f5b00001",)       # lesson 5b's set-up: imports, t, B, moments["VP"], gauss, checks_train, checks_samplers
MIX = "e5a10037"              # lesson 5b: the 2-D mixture oracle, its score, the prior draws
CIFAR = "e5a10027"            # lesson 5b: the score of an eps model (SymPy); section 3's table checks_cifar
APP_SETUP = ("a5a00001", "a5a00003", "a5a00011")  # imports; t, B, sigma, the SDE table, concrete, tables; symbols, closed, gauss
VP_CHAIN = "c5a2000a"                 # the q_step chain (gen, n_mc), before the SMLD chain
EM_FORWARD = ("035a75c8", "c5a20012")  # forward SDEs simulated by Euler-Maruyama; mean (x_t - c W_t) and variance rows
SUBVP_SIGN = ("a5a00015", "c8dee41a")  # t*, t_v; the sign of the note's g^2 and SubVPSDE.diffusion^2 vs beta (1 - e^{-2B})
PREDICTOR = "e5a10018"        # appendix: the predictor's SymPy expansion; table checks_samplers


def _edit_source(fn, old, new):
    """A copy of ``fn`` compiled from its source with ``old`` replaced by ``new`` (exactly once)."""
    src = textwrap.dedent(inspect.getsource(fn))
    if src.count(old) != 1:  # not an AssertionError: a mutant that does not apply must not count as killed
        raise ValueError(f"{fn.__name__}: {old!r} occurs {src.count(old)} times")
    ns = {}
    exec(compile(src.replace(old, new), f"<mutant of {fn.__name__}>", "exec"), fn.__globals__, ns)
    return ns[fn.__name__]


def _source_mutant(old, new):
    return lambda f: _edit_source(f, old, new)


def _class_mutant(method, old, new):
    """A subclass of the SDE class whose ``method`` has ``old`` replaced by ``new``."""

    def mutate(cls):
        broken = _edit_source(getattr(cls, method), old, new)
        return type(cls.__name__, (cls,), {method: broken, "__module__": cls.__module__})

    return mutate


MUTANTS = [
    Mutant("ch5 VPSDE.diffusion: sqrt dropped", NB, (*SETUP, SYMPY_T, VE_LIMIT, LIMIT_CHECK), "sde.VPSDE",
           _class_mutant("diffusion", "torch.sqrt(self.beta(t))", "self.beta(t)"), "g(t) = beta(t)"),
    Mutant("ch5 VPSDE.drift_coef: factor 1/2 dropped", NB, (*SETUP, SYMPY_T, VE_LIMIT, LIMIT_CHECK), "sde.VPSDE",
           _class_mutant("drift_coef", "-0.5 * self.beta(t)", "-self.beta(t)"), "f(t) = -beta(t)"),
    Mutant("ch5 VESDE.diffusion: factor sqrt(2 log ratio / T) dropped", NB, (*SETUP, SYMPY_T, VE_LIMIT, LIMIT_CHECK),
           "sde.VESDE", _class_mutant("diffusion", "self.sigma(t) * math.sqrt(2.0 * self._log_ratio / self.T)",
                                      "self.sigma(t)"), "g(t) = sigma(t)"),
    Mutant("ch5 SubVPSDE.diffusion: exp(-B) for exp(-2B)", NB_APP,
           (*APP_SETUP, *SUBVP_SIGN), "sde.SubVPSDE",
           _class_mutant("diffusion", "-torch.expm1(-2.0 * self.integrated_beta(t))",
                         "-torch.expm1(-self.integrated_beta(t))"), "g^2 = beta (1 - e^{-B})"),
    Mutant("ch5 VPSDE.marginal_coefs: sqrt of the variance dropped", NB, (*SETUP, SYMPY_T, MOMENT_ODE, *MOMENTS, MARGINALS),
           "sde.VPSDE", _class_mutant("marginal_coefs", "torch.sqrt(-torch.expm1(-B))", "-torch.expm1(-B)"),
           "s(t) = 1 - e^{-B}"),
    Mutant("ch5 VESDE.marginal_coefs: std = sigma(t) (drops -sigma_min^2)", NB_APP, (*APP_SETUP, VP_CHAIN, "cb29d124"), "sde.VESDE",
           _class_mutant("marginal_coefs", "torch.sqrt(torch.expm1(2.0 * t / self.T * self._log_ratio))",
                         "torch.exp(t / self.T * self._log_ratio)"), "s(t) = sigma(t)"),
    Mutant("ch5 reverse_drift: sign of the score term", NB, (*SETUP, SYMPY_T, FOKKER, "f9116d56"), "sde.reverse_drift",
           _source_mutant("sde.drift(x, t) - append_dims(g**2, x) * score", "sde.drift(x, t) + append_dims(g**2, x) * score"),
           "f + g^2 score"),
    Mutant("ch5 probability_flow_drift: factor 1/2 dropped", NB, (*SETUP, SYMPY_T, FOKKER, "f9116d56"), "sde.probability_flow_drift",
           _source_mutant("sde.drift(x, t) - 0.5 * append_dims(g**2, x) * score", "sde.drift(x, t) - append_dims(g**2, x) * score"),
           "f - g^2 score"),
    Mutant("ch5 reverse-diffusion predictor: G s for G^2 s", NB_APP,
           (*APP_SETUP, PREDICTOR, "e5a10020"), "sde._predictor",
           _source_mutant("x - (r - 1) * x + G**2 * score", "x - (r - 1) * x + G * score"), "x - f_i + G s + G z"),
    Mutant("ch5 Euler-Maruyama step: noise g |dt| for g sqrt(|dt|)", NB_APP,
           (*APP_SETUP, PREDICTOR, "e5a10020"), "sde._predictor",
           _source_mutant("g * math.sqrt(-dt) * randn_like(x, generator)", "g * (-dt) * randn_like(x, generator)"),
           "EM noise scaled by |dt|"),
    Mutant("ch5 corrector step size: factor 2 dropped", NB_APP, (*APP_SETUP, PREDICTOR, "e5a10022", "e5a10024"),
           "sde.sample_pc", _source_mutant("eps = 2.0 * alpha * (snr * z_norm / s_norm) ** 2",
                                           "eps = alpha * (snr * z_norm / s_norm) ** 2"), "eps = alpha (r|z|/|s|)^2"),
    Mutant("ch5 corrector step size: alpha_i = 1 dropped for VP", NB_APP, (*APP_SETUP, PREDICTOR, "e5a10022", "e5a10024"),
           "sde.sample_pc", _source_mutant("alpha = float((m_t / m_next) ** 2)", "alpha = 1.0"), "eps = 2 (r|z|/|s|)^2"),
    Mutant("ch5 eps_model_as_score: next index", NB_APP, (*APP_SETUP, "e5a10029"), "sde.eps_model_as_score",
           _source_mutant("idx = torch.where(take_lo, j_lo, j)", "idx = torch.where(take_lo, j_lo, j).add(1).clamp_max(schedule.T - 1)"),
           "index off by one"),
    Mutant("ch5 annealed Langevin: alpha s for alpha/2 s", NB_B, (*B_SETUP, MIX, "e5a10031", "e5a10033"),
           "score_matching.annealed_langevin",
           _source_mutant("x = x + 0.5 * alpha * score.to(x.dtype)", "x = x + alpha * score.to(x.dtype)"),
           "Langevin step with the full alpha on the score"),
    Mutant("ch5 annealed Langevin: step alpha_i ~ sigma_i, not sigma_i^2", NB_B, (*B_SETUP, MIX, "e5a10031", "e5a10033"),
           "score_matching.annealed_langevin",
           _source_mutant("alpha = step_lr * sigma_i**2 / sigma_L**2", "alpha = step_lr * sigma_i / sigma_L"),
           "alpha_i = eps sigma_i / sigma_L"),
    Mutant("ch5 dsm_loss_continuous: sign of the target", NB_B, (*B_SETUP, "e5a10012", "e5a10014"),
           "score_matching.dsm_loss_continuous",
           _source_mutant("target = -eps / append_dims(s, x_0)", "target = eps / append_dims(s, x_0)"), "target +eps/s"),
    Mutant("ch5 dsm_loss_continuous: model told T - t", NB_B, (*B_SETUP, "e5a10012", "e5a10014"),
           "score_matching.dsm_loss_continuous",
           _source_mutant("score = model(x_t, t.to(x_0.dtype))", "score = model(x_t, (sde.T - t + t_min).to(x_0.dtype))"),
           "the model is trained with the wrong time"),
    Mutant("ch5 VESDE.drift_coef: a weak drift f(t) = -0.002", NB_APP, (*APP_SETUP, *EM_FORWARD), "sde.VESDE",
           _class_mutant("drift_coef", "torch.zeros_like(self._t(t))", "torch.full_like(self._t(t), -0.002)"),
           "m(1) = 0.998 instead of 1: within the old 4 SE of a plain mean (1.4 at t = 1), not of x_t - c W_t"),
    Mutant("ch5 eps_model_as_score: next index (the CIFAR-10 network)", NB_B,
           (*B_SETUP, CIFAR, "26dfbaaa"), "sde.eps_model_as_score",
           _source_mutant("idx = torch.where(take_lo, j_lo, j)", "idx = torch.where(take_lo, j_lo, j).add(1).clamp_max(schedule.T - 1)"),
           "index off by one, seen by the check on the shipped network"),
]
