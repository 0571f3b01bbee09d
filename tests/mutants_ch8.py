"""Mutants for chapter 8 (guidance): the package functions its exact checks rest on."""
import torch

from mutation_harness import Mutant

NB = "08_guidance"
SETUP = ("c8000001",)
TILT = SETUP + ("c8000011",)                      # tilted_gaussian against the closed form
ORACLE = SETUP + ("c8000020",)                    # p(y|x_t), its gradient, Bayes for scores
W0 = SETUP + ("c8000020", "c8000021")                       # w = 0 recovers the conditional model
EQUAL = SETUP + ("c8000020", "c8000021", "c8000022")          # equal variances: CFG samples the tilt
APP = "appendix/08_guidance_appendix"             # measurements checked against their noise
CLF = ("a8a00001", "c8000030", "c8000032")        # accuracy by t: here against the shipped figures (appendix)
CG = SETUP + ("c8000030", "c8000033", "c8000034")  # classifier guidance on the shipped model: accuracy up with s


def _cfg_sign(f):
    # extrapolating towards the unconditional model instead of away from it
    return lambda eps_cond, eps_uncond, w: f(eps_uncond, eps_cond, w)


def _tilt_precision_sign(f):
    # 1/v_w = (1+w)/v_c + w/v_u: the unconditional precision added instead of subtracted
    def tilted_gaussian(mean_c, var_c, mean_u, var_u, w):
        m, v = f(mean_c, var_c, mean_u, var_u, w)
        p = (1 + w) / torch.as_tensor(var_c, dtype=torch.float64) + w / torch.as_tensor(var_u, dtype=torch.float64)
        return m, 1 / p
    return tilted_gaussian


def _conditional_score_sign(f):
    return lambda score, grad_log_p_y: f(score, -grad_log_p_y)


def _posterior_without_prior(cls):
    # p(y|x_t) from the likelihoods alone: the class probabilities pi_y forgotten
    class Mutated(cls):
        def log_class_posterior(self, x_t, alpha, sigma):
            logp = torch.stack([c.log_prob_t(x_t.double(), alpha, sigma) for c in self.conditionals], 1)
            return torch.log_softmax(logp, dim=1).to(x_t.dtype)
    return Mutated


def _grad_posterior_scale(cls):
    # grad log p(y|x_t) divided by sigma^2 instead of sigma (eps -> score conversion done twice)
    class Mutated(cls):
        def grad_log_class_posterior(self, x_t, alpha, sigma, y):
            return super().grad_log_class_posterior(x_t, alpha, sigma, y) / torch.as_tensor(sigma, dtype=torch.float64)
    return Mutated


def _cfg_model_w0_uncond(f):
    # the w = 0 shortcut returns the unconditional prediction
    def cfg_model(model, y, w):
        if w == 0:
            return lambda x_t, t: model(x_t, t, None)
        return f(model, y, w)
    return cfg_model


def _accuracy_t_reversed(f):
    # the timestep index read from the wrong end of the schedule (t -> T-1-t)
    def accuracy_by_t(model, images, labels, schedule, ts, **kw):
        out = f(model, images, labels, schedule, [schedule.T - 1 - t for t in ts], **kw)
        for r, t in zip(out, ts):
            r["t"] = t
        return out
    return accuracy_by_t


def _components_shifted(cls):
    # the components built with the next component's mean (an index off by one): the oracle's scores,
    # posteriors and responsibilities all agree with each other, but not with the mixture's own parameters
    class Mutated(cls):
        def __init__(self, weights, means, covs):
            super().__init__(weights, means, covs)
            K = len(self.components)
            self.components = [type(c)(self.means[(k + 1) % K], self.covs[k]) for k, c in enumerate(self.components)]
    return Mutated


def _ddpm_step_variance_as_std(f):
    # the step's noise scaled by the variance sigma_t^2 instead of the standard deviation sigma_t
    def ddpm_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, *, generator=None, noise=None, **kw):
        if noise is None:
            noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)
        mean = f(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, noise=torch.zeros_like(noise), **kw)
        std = f(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, noise=torch.ones_like(noise), **kw) - mean
        return mean + std**2 * noise
    return ddpm_step


def _guidance_away(f):
    # classifier guidance pushing away from the class: the classifier's gradient with its sign flipped
    def classifier_guided_model(model, clf, y, scale, schedule):
        class Flipped:
            def grad_log_prob(self, x_t, t, y):
                return -clf.grad_log_prob(x_t, t, y)
        return f(model, Flipped(), y, scale, schedule)
    return classifier_guided_model


MUTANTS = [
    Mutant("ch8 cfg_eps: extrapolates towards the unconditional model", NB, EQUAL, "guidance.cfg_eps", _cfg_sign),
    Mutant("ch8 tilted_gaussian: precision sign", NB, TILT, "guidance.tilted_gaussian", _tilt_precision_sign),
    Mutant("ch8 conditional_score: classifier term subtracted", NB, ORACLE, "guidance.conditional_score",
           _conditional_score_sign),
    Mutant("ch8 LabelledOracle: class prior forgotten in p(y|x_t)", NB, ORACLE, "guidance.LabelledOracle",
           _posterior_without_prior),
    Mutant("ch8 LabelledOracle: grad log p(y|x_t) off by 1/sigma", NB, ORACLE, "guidance.LabelledOracle",
           _grad_posterior_scale),
    Mutant("ch8 cfg_model: w = 0 gives the unconditional model", NB, W0, "guidance.cfg_model", _cfg_model_w0_uncond),
    Mutant("ch8 accuracy_by_t: t read as T-1-t", APP, CLF, "classifier.accuracy_by_t", _accuracy_t_reversed),
    Mutant("ch8 GaussianMixture: components paired with the next mean (only the independent densities see it)", NB,
           ORACLE, "oracles.GaussianMixture", _components_shifted),
    Mutant("ch8 ddpm_step: noise scaled by sigma_t^2 (the exact chain rows)", NB, W0, "samplers.ddpm_step",
           _ddpm_step_variance_as_std),
    Mutant("ch8 classifier_guided_model: pushes away from the class", NB, CG, "guidance.classifier_guided_model",
           _guidance_away),
]


def _cifar10_configured() -> bool:
    from diffnotes import data
    try:
        data.find_cifar10(download=False)
    except Exception:
        return False
    return True


if not _cifar10_configured():   # the accuracy check of cell c8000032 needs CIFAR-10 test images
    MUTANTS = [m for m in MUTANTS if m.target != "classifier.accuracy_by_t"]
