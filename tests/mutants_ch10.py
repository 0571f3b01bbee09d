"""Mutants for chapter 10 (flow matching and rectified flow): each breaks one function of
diffnotes.flow_matching that the chapter checks, with a slip a reader could make."""
import torch

from mutation_harness import Mutant

NB = "10_flow_matching"
SETUP = "c10000002"          # imports, the mixture MIX, the Gaussian GAUSS, V, FINE, agrees, trajectory
# the appendix: its setup, the CFM-loss identity (lesson section 1) and the closed-form velocity (section 3) by
# Monte Carlo, the CIFAR-10 velocity network against the noise network it came from (section 8)
NB_APP = "appendix/10_flow_matching_appendix"
APP_SETUP = "a10a0002"
APP_LOSS = ("a10a0004",)
APP_VELOCITY = ("a10a0012",)  # the closed-form velocity (lesson section 3) against Monte Carlo
APP_NETWORK = ("a10a0006", "a10a0007")
CONV = ("c10000011",)                      # section 2: conversions against SymPy
ORDER = ("c10000018",)                     # section 4: Euler and Heun orders on the Gaussian
REFLOW = ("c10000023", "c10000025")        # section 5: straightness and reflow errors
BRIDGE = ("c10000030", "c10000032")        # section 6: the DDIM bridge
WEIGHT = ("c10000035",)                    # section 7: loss weighting


def _path_plus_t(f):
    def conditional_path(x0, eps, t):
        # (1 - t) x0 - t eps: a flipped noise sign, a path that does not end at the noise
        return 2 * f(x0, torch.zeros_like(eps), t) - f(x0, eps, t)
    return conditional_path


def _velocity_flipped(f):
    def conditional_velocity(x0, eps):
        return -f(x0, eps)  # x0 - eps: the target of a flow run forwards from data to noise
    return conditional_velocity


def _x0_with_one_minus_t(f):
    def x0_from_velocity(x_t, v, t):
        return f(x_t, v, 1 - torch.as_tensor(t, dtype=torch.float64))  # x_t - (1-t) v
    return x0_from_velocity


def _eps_with_t(f):
    def eps_from_velocity(x_t, v, t):
        return f(x_t, v, 1 - torch.as_tensor(t, dtype=torch.float64))  # x_t + t v instead of x_t + (1-t) v
    return eps_from_velocity


def _score_over_t_squared(f):
    def score_from_velocity(x_t, v, t):
        tt = torch.as_tensor(t, dtype=x_t.dtype)
        tt = tt.reshape(-1, *([1] * (x_t.ndim - 1))) if tt.ndim else tt
        return f(x_t, v, t) / tt  # divides by t^2: sigma^2 where sigma belongs
    return score_from_velocity


def _v_from_score_sign(f):
    def velocity_from_score(x_t, score, t):
        return f(x_t, -score, t)  # (-x_t + t s) / (1 - t): the sign of the score term
    return velocity_from_score


def _v_from_x0_over_one_minus_t(f):
    def velocity_from_x0(x_t, x0, t):
        tt = torch.as_tensor(t, dtype=x_t.dtype)
        tt = tt.reshape(-1, *([1] * (x_t.ndim - 1))) if tt.ndim else tt
        return f(x_t, x0, t) * tt / (1 - tt)  # (x_t - x0) / (1 - t)
    return velocity_from_x0


def _marginal_sigma_sqrt_t(f):
    def marginal_velocity(oracle, x, t):
        # the posterior of x_t = (1-t) x0 + sqrt(t) eps: t taken as the noise variance, not its std
        xf = oracle._flat(x)
        tt = torch.as_tensor(t, dtype=torch.float64)
        tt = (tt.expand(xf.shape[0]) if tt.ndim == 0 else tt).reshape(-1, 1)
        x0_hat = oracle._denoise(xf, 1 - tt, tt.sqrt())
        return ((xf - x0_hat) / tt).reshape(x.shape).to(x.dtype)
    return marginal_velocity


def _broken_euler(velocity_time, step_factor):
    """An Euler loop for dx/dt = v that evaluates v at ``velocity_time(t, s)`` and moves ``step_factor``
    of the step (the correct loop: ``t`` and 1)."""
    def mutate(f):
        def sample_euler(model, x, timesteps, *, callback=None, progress=False):
            ts = torch.as_tensor(timesteps, dtype=torch.float64)
            for i in range(len(ts) - 1):
                t, s = float(ts[i]), float(ts[i + 1])
                v = model(x, torch.full((x.shape[0],), velocity_time(t, s), dtype=x.dtype))
                x_next = x + step_factor * (s - t) * v
                if callback is not None:
                    callback(dict(i=i, t=t, t_next=s, x=x, v=v, x0_hat=x - t * v, x_next=x_next))
                x = x_next
            return x
        return sample_euler
    return mutate


_euler_velocity_at_next_time = _broken_euler(lambda t, s: s if s > 0 else t, 1.0)  # the velocity at the step's end
_euler_half_step = _broken_euler(lambda t, s: t, 0.5)                                # half the step


def _heun_without_correction(f):
    from diffnotes import flow_matching

    def sample_heun(model, x, timesteps, *, callback=None, progress=False):
        return flow_matching.sample_euler(model, x, timesteps, callback=callback)  # the corrector dropped
    return sample_heun


def _straightness_without_mean(f):
    def straightness(velocities, timesteps):
        # sum_i Delta_i ||v_i||^2: the speed measured, not the deviation from x_1 - x_0
        vs = torch.stack(list(velocities)) if isinstance(velocities, (list, tuple)) else velocities
        ts = torch.as_tensor(timesteps, dtype=torch.float64)
        w = (ts[:-1] - ts[1:]).to(vs.dtype).reshape(-1, 1)
        return (w * (vs**2).flatten(2).sum(2)).sum(0)
    return straightness


def _kernel_target_flipped(f):
    def kernel_velocity(x0, x1, *, bandwidth, chunk=4096):
        model = f(x0, x1, bandwidth=bandwidth, chunk=chunk)
        return lambda x, t: -model(x, t)  # regresses x0 - x1
    return kernel_velocity


def _pairs_from_one_step(f):
    def reflow_pairs(model, x1, timesteps, *, method="heun"):
        return f(model, x1, [1.0, 0.0], method="euler")  # pairs from a single Euler step, not the flow
    return reflow_pairs


def _flow_time_without_denominator(f):
    def flow_time_from_alpha_bar(alpha_bar):
        ab = alpha_bar if isinstance(alpha_bar, torch.Tensor) else torch.as_tensor(alpha_bar, dtype=torch.float64)
        return torch.sqrt(1 - ab)  # sigma of DDIM taken as the flow time
    return flow_time_from_alpha_bar


def _flow_from_ddim_unscaled(f):
    def flow_from_ddim(x, alpha_bar):
        _, t = f(x, alpha_bar)
        return x, t  # the state not rescaled
    return flow_from_ddim


def _weight_exp_minus_lambda(f):
    def flow_matching_weight(log_snr):
        return f(log_snr) ** 2  # e^{-lambda}
    return flow_matching_weight


def _log_snr_without_two(f):
    def log_snr(t):
        return f(t) / 2  # log((1-t)/t): the ratio of stds, not of variances
    return log_snr


def _l_simple_without_two(f):
    def l_simple_weight(schedule):
        lam, w = f(schedule)
        return lam, w / 2  # the density of lambda, without Kingma & Gao's factor 2
    return l_simple_weight


def _net_input_unscaled(f):
    def call_velocity_net(net, x_t, t, schedule, *args):
        tt = torch.as_tensor(t, dtype=torch.float64)
        s = torch.sqrt((1 - tt) ** 2 + tt**2)
        s = s.reshape(-1, *([1] * (x_t.ndim - 1))) if s.ndim else s
        return f(net, x_t * s.to(x_t.dtype), t, schedule, *args)  # cancels the scaling: the network sees x_t as it is
    return call_velocity_net


def _network_time_linear(f):
    def network_time(t, schedule):
        return torch.as_tensor(t, dtype=torch.float64) * (schedule.T - 1)  # t (T - 1): not the step of equal noise
    return network_time


def _m(name, cells, target, mutate, what):
    return Mutant(f"ch10 (10_flow) {name}", NB, (SETUP, *cells), f"flow_matching.{target}", mutate, what)


def _ma(name, cells, target, mutate, what, module="flow_matching"):
    return Mutant(f"ch10 appendix {name}", NB_APP, (APP_SETUP, *cells), f"{module}.{target}", mutate, what)


MUTANTS = [
    _ma("conditional_path: noise sign", APP_LOSS, "conditional_path", _path_plus_t, "(1-t) x0 - t eps"),
    _ma("conditional_velocity: x0 - eps", APP_LOSS, "conditional_velocity", _velocity_flipped, "x0 - eps"),
    _ma("call_velocity_net: input not scaled", APP_NETWORK, "call_velocity_net", _net_input_unscaled,
        "F(x_t, tau) for F(x_t / sqrt((1-t)^2 + t^2), tau)", module="flow_net"),
    _ma("network_time: t (T - 1)", APP_NETWORK, "network_time", _network_time_linear, "linear in t", module="flow_net"),
    _m("x0_from_velocity: (1-t) for t", CONV, "x0_from_velocity", _x0_with_one_minus_t, "x_t - (1-t) v"),
    _m("eps_from_velocity: t for (1-t)", CONV, "eps_from_velocity", _eps_with_t, "x_t + t v"),
    _m("score_from_velocity: over t^2", CONV, "score_from_velocity", _score_over_t_squared, "divided by t^2"),
    _m("velocity_from_score: score sign", CONV, "velocity_from_score", _v_from_score_sign, "+ t s"),
    _m("velocity_from_x0: over (1-t)", CONV, "velocity_from_x0", _v_from_x0_over_one_minus_t, "(x_t - x0)/(1-t)"),
    _ma("marginal_velocity: sigma = sqrt(t)", APP_VELOCITY, "marginal_velocity", _marginal_sigma_sqrt_t,
        "posterior of (1-t) x0 + sqrt(t) eps"),
    _m("sample_euler: velocity at the step's end", BRIDGE, "sample_euler", _euler_velocity_at_next_time,
       "v(x_t, t_next)"),
    _m("sample_euler: half step", ORDER, "sample_euler", _euler_half_step, "x + h v / 2"),
    _m("sample_heun: no corrector", ORDER, "sample_heun", _heun_without_correction, "Euler in Heun's place"),
    _m("straightness: no mean subtracted", REFLOW, "straightness", _straightness_without_mean,
       "sum Delta ||v||^2"),
    _m("kernel_velocity: x0 - x1", REFLOW, "kernel_velocity", _kernel_target_flipped, "target sign flipped"),
    _m("reflow_pairs: one Euler step", REFLOW, "reflow_pairs", _pairs_from_one_step, "pairs from one step"),
    _m("flow_time_from_alpha_bar: sqrt(1-ab)", BRIDGE, "flow_time_from_alpha_bar", _flow_time_without_denominator,
       "t = sqrt(1 - ab)"),
    _m("flow_from_ddim: not rescaled", BRIDGE, "flow_from_ddim", _flow_from_ddim_unscaled, "x_fm = x_ddim"),
    _m("flow_matching_weight: e^-lambda", WEIGHT, "flow_matching_weight", _weight_exp_minus_lambda, "e^{-lambda}"),
    _m("log_snr: without the 2", WEIGHT, "log_snr", _log_snr_without_two, "log((1-t)/t)"),
    _m("l_simple_weight: without the 2", WEIGHT, "l_simple_weight", _l_simple_without_two, "density of lambda"),
]
