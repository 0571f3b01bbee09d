"""Schematics on a plane: Euler against Heun on a curved trajectory (lessons 5, 9), guided score fields
(lesson 8) and what FID measures in 2-D (lesson 7)."""
from __future__ import annotations

import math

import numpy as np
import torch

from .._checks import check_finite, check_int, check_range
from .base import FWD, GREEN, INK, REV, Schematic, bare_axes

__all__ = ["ode_step_comparison", "guidance_field", "frechet_picture"]


# --------------------------------------------------------------------------- lessons 5, 9
def _spiral_matrix(decay: float, omega: float) -> torch.Tensor:
    return torch.tensor([[-decay, -omega], [omega, -decay]], dtype=torch.float64)


def _spiral_exact(x0: torch.Tensor, t, decay: float, omega: float) -> torch.Tensor:
    """The closed-form solution exp(tA) x0 = exp(-decay t) R(omega t) x0, at the times ``t`` (``[n]``)."""
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    c, s = torch.cos(omega * t), torch.sin(omega * t)
    rot = torch.stack([c * x0[0] - s * x0[1], s * x0[0] + c * x0[1]], 1)
    return torch.exp(-decay * t)[:, None] * rot


def ode_step_comparison(*, n_steps: int = 1, t_end: float = 0.8, x_start=(2.0, 0.0), omega: float = 1.0,
                        decay: float = 0.3) -> Schematic:
    r"""Euler against Heun (second order) on a curved 2-D ODE trajectory with an exact solution.

    The ODE is the linear spiral :math:`dx/dt = Ax` with :math:`A = \begin{pmatrix}-a & -\omega\\
    \omega & -a\end{pmatrix}` (``decay`` :math:`a`, ``omega`` :math:`\omega`): its trajectories turn
    at rate :math:`\omega` while they shrink at rate :math:`a`, and its solution is known exactly,
    :math:`x(t) = e^{-at}R(\omega t)\,x(0)` with :math:`R` the rotation. It stands in for the curved
    trajectory of a probability-flow ODE, which lessons 5 and 9 solve with the same two steps (lesson
    9 as EDM's Heun sampler, Karras et al. 2022, Algorithm 1). From ``x_start`` at :math:`t = 0` to
    ``t_end`` in ``n_steps`` equal steps :math:`h`, with :math:`f(x) = Ax`:

    * Euler: :math:`x' = x + h\,d`, with :math:`d = f(x)` the slope at the start;
    * Heun: :math:`x' = x + h\,(d + d')/2`, with :math:`d' = f(x + h\,d)` the slope at Euler's end point.

    With one step the figure draws the three arrows from the start (Euler's step along :math:`d`,
    the step along :math:`d'`, Heun's step along their average), over the faint vector field
    :math:`f`. It teaches that Euler follows the tangent and leaves a curved path, while Heun
    corrects the slope with one more evaluation: when :math:`h` halves, Euler's error halves
    (order 1) and Heun's falls fourfold (order 2). Lessons 5 and 9.

    Parameters
    ----------
    n_steps : int
        Steps of each solver, 1 to 64 (1: one large step, the board picture).
    t_end : float
        Where the trajectory ends, ``t_end > 0``; the angle it turns through is ``omega * t_end``
        radians.
    x_start : sequence of 2 floats
        The starting point, not the origin.
    omega : float
        Turning rate, ``omega > 0`` (the trajectory must bend).
    decay : float
        Shrinking rate, ``decay >= 0``.

    Returns
    -------
    Schematic
        ``(fig, alt)``; ``data`` holds ``times`` (``[n_steps + 1]``), ``exact`` (the exact solution
        at those times), ``euler`` and ``heun`` (the solvers' points, ``[n_steps + 1, 2]``),
        ``exact_curve`` (``[400, 2]``, the trajectory drawn) and ``errors``
        (``{"euler": ..., "heun": ...}``, the Euclidean distances of their end points from the exact one).
    """
    n_steps = check_int("n_steps", n_steps, 1, 64)
    check_range("t_end", t_end, 0.0, None, low_open=True)
    check_range("omega", omega, 0.0, None, low_open=True)
    check_range("decay", decay, 0.0, None)
    x0 = torch.as_tensor(x_start, dtype=torch.float64).flatten()
    if x0.numel() != 2:
        raise ValueError(f"x_start must be a point in the plane (2 numbers), got {x0.tolist()}")
    check_finite("x_start", x0)
    if float(torch.linalg.norm(x0)) == 0.0:
        raise ValueError("x_start must not be the origin (the fixed point of the spiral, where nothing moves)")
    t_end, omega, decay = float(t_end), float(omega), float(decay)
    A = _spiral_matrix(decay, omega)

    def f(x):
        return A @ x

    times = torch.linspace(0.0, t_end, n_steps + 1, dtype=torch.float64)
    h = t_end / n_steps
    euler, heun = [x0], [x0]
    for _ in range(n_steps):
        euler.append(euler[-1] + h * f(euler[-1]))
        d = f(heun[-1])
        d2 = f(heun[-1] + h * d)
        heun.append(heun[-1] + h * 0.5 * (d + d2))
    euler, heun = torch.stack(euler), torch.stack(heun)
    exact = _spiral_exact(x0, times, decay, omega)
    curve = _spiral_exact(x0, torch.linspace(0.0, t_end, 400, dtype=torch.float64), decay, omega)
    err_e = float(torch.linalg.norm(euler[-1] - exact[-1]))
    err_h = float(torch.linalg.norm(heun[-1] - exact[-1]))

    # ---- figure
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    e, hn, cv = euler.numpy(), heun.numpy(), curve.numpy()
    pts = np.concatenate([cv, e, hn, np.zeros((1, 2))])
    probe_len = 0.1 * float(np.ptp(pts, axis=0).max())
    if n_steps == 1:  # the slope d' drawn where it is evaluated, at Euler's point
        d2_dir = f(euler[1]).numpy()
        probe = probe_len * d2_dir / max(float(np.linalg.norm(d2_dir)), 1e-12)
        pts = np.concatenate([pts, (e[1] + probe)[None]])
    pad = 0.12 * float(np.ptp(pts, axis=0).max())
    lo, hi = pts.min(0) - pad, pts.max(0) + pad
    lo[1] -= 1.5 * pad  # room for the legend below
    span = hi - lo
    fig = Figure(figsize=(7.2, 7.2 * span[1] / span[0] + 0.5), dpi=100)
    ax = fig.subplots()
    bare_axes(ax, lo, hi)
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 13), np.linspace(lo[1], hi[1], 13))
    G = np.stack([gx.ravel(), gy.ravel()], 1) @ A.numpy().T
    ax.quiver(gx.ravel(), gy.ravel(), G[:, 0], G[:, 1], color="#d5d5d5", angles="xy", width=0.003, gid="field")
    more = _spiral_exact(x0, torch.linspace(t_end, t_end + 2 * math.pi / omega, 300, dtype=torch.float64),
                         decay, omega).numpy()
    ax.plot(more[:, 0], more[:, 1], color=INK, lw=1.0, alpha=0.25, ls=(0, (3, 3)))
    ax.plot(cv[:, 0], cv[:, 1], color=INK, lw=2.4, gid="exact", label="exact solution")
    steps_word = f"{n_steps} step{'s' if n_steps > 1 else ''}"
    ax.plot(e[:, 0], e[:, 1], "-o" if n_steps > 1 else "o", color=REV, lw=1.6, ms=6, gid="euler",
            label=f"Euler, {steps_word}: error {err_e:.2g}")
    ax.plot(hn[:, 0], hn[:, 1], "-o" if n_steps > 1 else "o", color=GREEN, lw=1.6, ms=6, gid="heun",
            label=f"Heun, {steps_word}: error {err_h:.2g}")
    ax.plot(*cv[-1], marker="*", ms=17, color=INK, ls="none", gid="exact_end", zorder=5)
    ax.plot(*x0.numpy(), marker="o", ms=7, color=INK, ls="none", zorder=5)
    off = 0.035 * span.max()
    if n_steps == 1:
        d = f(x0)
        d2 = f(x0 + h * d)
        a0 = x0.numpy()
        arrows = ((h * d, REV, "-", "euler_step"), (h * d2, "#777777", (0, (4, 3)), "step_along_d2"),
                  (h * 0.5 * (d + d2), GREEN, "-", "heun_step"))
        for vec, color, ls, gid in arrows:
            ax.add_patch(FancyArrowPatch(a0, a0 + vec.numpy(), arrowstyle="-|>", mutation_scale=18, color=color,
                                         lw=2.0, ls=ls, shrinkA=0, shrinkB=4, gid=gid, zorder=4))
        ax.add_patch(FancyArrowPatch(e[1], e[1] + probe, arrowstyle="-|>", mutation_scale=14, color="#777777",
                                     lw=1.8, shrinkA=0, shrinkB=0, gid="slope_at_euler_point", zorder=4))
        ax.text(e[1][0] + off, e[1][1], "Euler: step along $d$,\nthe slope at the start", color=REV,
                fontsize=11, ha="left", va="center")
        tip = a0 + (h * d2).numpy()
        ax.text(tip[0], tip[1] - off, "step along $d'$, the slope\nat Euler's point", color="#555555",
                fontsize=11, ha="center", va="top")
        ax.text(hn[1][0] - off, hn[1][1] - off, "Heun: along $(d + d')/2$", color=GREEN, fontsize=11,
                ha="right", va="top")
    ax.text(x0[0].item() + off, x0[1].item(), "start", fontsize=11, ha="left", va="center")
    if n_steps == 1:
        ax.text(cv[-1][0] + 0.7 * off, cv[-1][1] + 0.7 * off, "exact end", fontsize=11, ha="left", va="bottom")
    else:  # on the inner side of the curve: Euler's points drift outwards
        u = -cv[-1] / max(float(np.linalg.norm(cv[-1])), 1e-12)
        ax.text(cv[-1][0] + off * u[0], cv[-1][1] + off * u[1], "exact end", fontsize=11,
                ha="right" if u[0] < 0 else "left", va="top" if u[1] < 0 else "bottom")
    ax.legend(loc="lower left", fontsize=10.5, framealpha=0.92, edgecolor="none")
    ax.set_title(rf"$d\mathbf{{x}}/dt = A\mathbf{{x}}$, a spiral: Euler and Heun from $t = 0$ to ${t_end:g}$",
                 fontsize=12)
    fig.tight_layout()

    turn = math.degrees(omega * t_end)
    alt = (f"A curved trajectory of a 2-D ODE whose field (faint arrows) spirals towards the origin: the exact "
           f"solution from the start point bends through {turn:.0f} degrees to its end point (a star) at "
           f"t = {t_end:g}. With {steps_word} of size {h:.2g}, Euler's method (red) lands {err_e:.2g} away from the "
           f"exact end point and Heun's method (green) {err_h:.2g} away.")
    if n_steps == 1:
        alt += (" Three arrows leave the start: Euler's step along the slope d at the start, which follows the "
                "tangent off the curve; a dashed step along the slope d' found at Euler's end point; and Heun's "
                "step along their average, which lands nearer the curve.")
    return Schematic(fig, alt, {"times": times.numpy(), "exact": exact.numpy(), "euler": e, "heun": hn,
                                "exact_curve": cv, "errors": {"euler": err_e, "heun": err_h}})


# --------------------------------------------------------------------------- lesson 8
def _default_mixture():
    from ..oracles import GaussianMixture

    return GaussianMixture([0.3, 0.3, 0.4], [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]],
                           [0.25 * torch.eye(2, dtype=torch.float64)] * 3)


def guidance_field(mixture=None, y: int = 0, w: float = 3.0, *, alpha: float = 0.8, sigma: float = 0.6,
                   n_grid: int = 15, extent=None) -> Schematic:
    r"""The score fields of classifier-free guidance on a labelled 2-D Gaussian mixture.

    Three panels on the same grid of points :math:`x_t`, at the noise level
    :math:`x_t = \alpha x_0 + \sigma z`:

    1. the unconditional score :math:`s_u = \nabla\log p_t(x_t)`, over the contours of
       :math:`p_t`;
    2. the class score :math:`s_c = \nabla\log p_t(x_t\mid y)`, over the contours of the class
       density :math:`p_t(x_t\mid y)`;
    3. the guided field :math:`(1+w)\,s_c - w\,s_u = s_c + w\,\nabla\log p_t(y\mid x_t)`
       (Ho & Salimans 2022, eq. 6 in score form), over the same class contours.

    The scores are exact (:class:`diffnotes.guidance.LabelledOracle`: class = mixture
    component). Arrows have their true directions and relative lengths within a panel; each panel
    has its own arrow scale, given by its key. It teaches that guidance adds :math:`w` times the
    classifier's gradient: the guided field points away from the other classes, more strongly the
    larger :math:`w`, which is why guided samples gather on the far side of their class. Lesson 8.

    Parameters
    ----------
    mixture : diffnotes.oracles.GaussianMixture or diffnotes.guidance.LabelledOracle, optional
        2-D labelled data (default: lesson 8's mixture, three classes at (-2, 0), (2, 0), (0, 2.5)
        with variance 0.25).
    y : int
        The class guided towards.
    w : float
        Guidance weight, ``w >= 0`` (``w = 0``: the class score itself).
    alpha, sigma : float
        Mean coefficient and noise std of :math:`x_t` (``alpha > 0``, ``sigma > 0``).
    n_grid : int
        Arrows per side of the grid, 4 to 40.
    extent : (xmin, xmax, ymin, ymax), optional
        The plotted window (default: the scaled class means with a margin).

    Returns
    -------
    Schematic
        ``(fig, alt)``; ``data`` holds ``points`` ``[n_grid**2, 2]`` and the three fields there,
        ``unconditional``, ``conditional`` and ``guided`` (numpy arrays, the values plotted).
    """
    from ..guidance import LabelledOracle
    from ..oracles import GaussianMixture

    if mixture is None:
        mixture = _default_mixture()
    if isinstance(mixture, GaussianMixture):
        lab = LabelledOracle.from_mixture(mixture)
    elif isinstance(mixture, LabelledOracle):
        lab = mixture
    else:
        raise ValueError(f"mixture must be a GaussianMixture or a LabelledOracle, got {type(mixture).__name__}")
    if tuple(lab.unconditional.event_shape) != (2,):
        raise ValueError(f"mixture must hold 2-D data to be drawn in the plane, got event shape "
                         f"{tuple(lab.unconditional.event_shape)}")
    y = check_int("y", y, 0, lab.num_classes - 1)
    check_range("w", w, 0.0, None)
    check_range("alpha", alpha, 0.0, None, low_open=True)
    check_range("sigma", sigma, 0.0, None, low_open=True)
    n_grid = check_int("n_grid", n_grid, 4, 40)
    if extent is None:
        means = torch.stack([c.mean for c in lab.conditionals]) * alpha
        lo, hi = means.min(0).values - 1.6, means.max(0).values + 1.6
        extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    extent = tuple(float(v) for v in extent)
    if len(extent) != 4 or not (extent[0] < extent[1] and extent[2] < extent[3]):
        raise ValueError(f"extent must be (xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax, got {extent}")

    gx = torch.linspace(extent[0], extent[1], n_grid, dtype=torch.float64)
    gy = torch.linspace(extent[2], extent[3], n_grid, dtype=torch.float64)
    X, Y = torch.meshgrid(gx, gy, indexing="xy")
    pts = torch.stack([X.flatten(), Y.flatten()], 1)
    s_u = lab.unconditional.score(pts, alpha, sigma)
    s_c = lab.conditionals[y].score(pts, alpha, sigma)
    guided = (1 + w) * s_c - w * s_u

    fx = torch.linspace(extent[0], extent[1], 120, dtype=torch.float64)
    fy = torch.linspace(extent[2], extent[3], 120, dtype=torch.float64)
    FX, FY = torch.meshgrid(fx, fy, indexing="xy")
    fine = torch.stack([FX.flatten(), FY.flatten()], 1)
    dens_u = lab.unconditional.log_prob_t(fine, alpha, sigma).exp().reshape(FX.shape).numpy()
    dens_c = lab.conditionals[y].log_prob_t(fine, alpha, sigma).exp().reshape(FX.shape).numpy()

    from matplotlib.figure import Figure

    fig = Figure(figsize=(13.5, 4.9), dpi=100)
    axes = fig.subplots(1, 3)
    titles = (r"unconditional score $\nabla\log p_t(\mathbf{x})$",
              rf"class score $\nabla\log p_t(\mathbf{{x}}\mid y={y})$",
              rf"guided, $w = {w:g}$: $(1+w)\,\nabla\log p_t(\mathbf{{x}}\mid y) - w\,\nabla\log p_t(\mathbf{{x}})$")
    fields = (s_u, s_c, guided)
    colors = ("#555555", FWD, REV)
    P = pts.numpy()
    class_means = [(alpha * c.mean).numpy() for c in lab.conditionals]
    for k, ax in enumerate(axes):
        dens = dens_u if k == 0 else dens_c
        ax.contour(FX.numpy(), FY.numpy(), dens, levels=6, colors="#9ab" if k else "#aaaaaa", linewidths=0.9)
        F = fields[k].numpy()
        mag = np.linalg.norm(F, axis=1)
        q = ax.quiver(P[:, 0], P[:, 1], F[:, 0], F[:, 1], color=colors[k], angles="xy", pivot="tail",
                      width=0.006, gid=("unconditional", "conditional", "guided")[k])
        ref = float(10 ** np.floor(np.log10(max(np.median(mag), 1e-12))))
        ref = ref * (5 if np.median(mag) / ref >= 5 else 2 if np.median(mag) / ref >= 2 else 1)
        ax.quiverkey(q, 0.80, 1.015, ref, f"length {ref:g}", labelpos="W", coordinates="axes", fontproperties={"size": 9.5})
        for j, m in enumerate(class_means):
            bold = j == y
            ax.text(m[0], m[1], f"y={j}", ha="center", va="center", fontsize=11 if bold else 10,
                    fontweight="bold" if bold else "normal", color=INK if bold else "#777777",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=INK if bold else "#bbbbbb", alpha=0.85),
                    zorder=5)
        ax.set_xlim(extent[0] - 0.3, extent[1] + 0.3)
        ax.set_ylim(extent[2] - 0.3, extent[3] + 0.3)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(titles[k], fontsize=11 if k < 2 else 10.5, pad=18)
    fig.tight_layout()

    alt = (f"Three quiver plots on the same {n_grid} by {n_grid} grid around a mixture of {lab.num_classes} "
           f"Gaussian classes (labelled y=0 to y={lab.num_classes - 1}), at noise level alpha = {alpha:g}, "
           f"sigma = {sigma:g}. Left: the unconditional score, over contours of the noisy mixture, pointing "
           f"towards the nearest class. Middle: the score of class y={y}, over contours of that class's density, "
           f"pointing towards that class. Right: the guided field, (1+w) times the class score minus w times the "
           f"unconditional score with w = {w:g}, over the same contours")
    ratio = None
    if w > 0 and lab.class_probs is not None:
        post = lab.log_class_posterior(pts, alpha, sigma)
        elsewhere = post.argmax(1) != y  # points that another class explains better
        if bool(elsewhere.any()):
            g_len = np.median(torch.linalg.norm(guided[elsewhere], dim=1).numpy())
            c_len = np.median(torch.linalg.norm(s_c[elsewhere], dim=1).numpy())
            ratio = float(g_len / c_len)
    if ratio is not None:
        alt += (f"; where another class is the more likely one, it pushes towards class y={y} with arrows "
                f"{ratio:.1f} times as long as the class score's (medians)")
    elif w == 0:
        alt += "; with w = 0 it is the class score itself"
    alt += ". Each panel has its own arrow scale, given by its key."
    return Schematic(fig, alt, {"points": P, "unconditional": s_u.numpy(), "conditional": s_c.numpy(),
                                "guided": guided.numpy(), "extent": extent, "length_ratio": ratio})


# --------------------------------------------------------------------------- lesson 7
def _check_gaussian_2d(name: str, mean, cov):
    m = torch.as_tensor(mean, dtype=torch.float64).flatten()
    c = torch.as_tensor(cov, dtype=torch.float64)
    if m.numel() != 2:
        raise ValueError(f"{name} mean must be a point in the plane (2 numbers), got {m.tolist()}")
    if tuple(c.shape) != (2, 2):
        raise ValueError(f"{name} covariance must be a 2 x 2 matrix, got shape {tuple(c.shape)}")
    check_finite(f"{name} mean", m)
    check_finite(f"{name} covariance", c)
    if not torch.allclose(c, c.T, rtol=0.0, atol=1e-12 * max(1.0, float(c.abs().max()))):
        raise ValueError(f"{name} covariance must be symmetric, got {c.tolist()}")
    if float(torch.linalg.eigvalsh(c).min()) <= 0.0:
        raise ValueError(f"{name} covariance must be positive definite, got {c.tolist()}")
    return m, c


def _ellipse_2sigma(mean: np.ndarray, cov: np.ndarray):
    """(width, height, angle in degrees) of the ellipse {x: (x-mean)^T cov^-1 (x-mean) = 4}."""
    w, v = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(v[1, 1], v[0, 1]))  # direction of the larger axis
    return 2 * 2 * math.sqrt(w[1]), 2 * 2 * math.sqrt(w[0]), angle


def frechet_picture(mean_real=(0.0, 0.0), cov_real=((1.0, 0.5), (0.5, 0.6)), mean_gen=(1.1, 0.5),
                    cov_gen=((0.25, -0.1), (-0.1, 1.6)), *, n: int = 300, seed: int = 0) -> Schematic:
    r"""What FID measures, drawn in 2-D: two clouds of features, their fitted Gaussians, and the distance.

    Draws ``n`` points from :math:`N(\mu_\text{real}, \Sigma_\text{real})` (standing for the
    features of real images) and ``n`` from :math:`N(\mu_\text{gen}, \Sigma_\text{gen})` (features
    of generated images), with a fixed ``torch.Generator`` in float64. From each cloud it fits a
    Gaussian as FID does (sample mean :math:`\mu_i`, unbiased sample covariance :math:`S_i`, by
    :func:`diffnotes.fid.feature_statistics`) and draws its mean and its 2-sigma ellipse
    :math:`\{x: (x-\mu_i)^\top S_i^{-1}(x-\mu_i) = 4\}`. The Fréchet distance of the two fitted
    Gaussians is stated split in two:

    .. math::

        d^2 = \underbrace{\lVert\mu_1-\mu_2\rVert^2}_{\text{mean term}}
            + \underbrace{\operatorname{tr}\big(S_1 + S_2 - 2(S_1S_2)^{1/2}\big)}_{\text{covariance term}},

    the total by :func:`diffnotes.fid.frechet_distance` and the covariance term as the distance of
    the two fitted Gaussians moved onto a common mean (the same function with :math:`\mu_2 = \mu_1`).
    It teaches that FID sees only a mean and a covariance per set: a shift of the cloud and a change
    of its shape both cost. Lesson 7.

    Parameters
    ----------
    mean_real, cov_real, mean_gen, cov_gen
        The two Gaussians the clouds are drawn from (2-vectors, symmetric positive-definite 2 x 2).
    n : int
        Points per cloud, 10 to 20 000.
    seed : int
        Seed of the generator that draws both clouds.

    Returns
    -------
    Schematic
        ``(fig, alt)``; ``data`` holds the clouds ``real`` and ``generated`` (``[n, 2]``), their
        statistics ``mu_real``, ``S_real``, ``mu_gen``, ``S_gen``, and ``mean_term``, ``cov_term``
        and ``fid`` (``fid = mean_term + cov_term`` up to round-off).
    """
    from .. import fid as _fid

    m1, c1 = _check_gaussian_2d("real", mean_real, cov_real)
    m2, c2 = _check_gaussian_2d("generated", mean_gen, cov_gen)
    n = check_int("n", n, 10, 20_000)
    seed = check_int("seed", seed, 0)
    g = torch.Generator().manual_seed(seed)
    real = m1 + torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(c1).T
    gen = m2 + torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(c2).T
    mu1, S1 = _fid.feature_statistics(real.numpy())
    mu2, S2 = _fid.feature_statistics(gen.numpy())
    mean_term = float(np.sum((mu1 - mu2) ** 2))
    cov_term = _fid.frechet_distance(mu1, S1, mu1, S2)  # same mean: only the covariance term is left
    total = _fid.frechet_distance(mu1, S1, mu2, S2)

    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse, FancyArrowPatch

    R, G = real.numpy(), gen.numpy()
    ells = [_ellipse_2sigma(mu1, S1), _ellipse_2sigma(mu2, S2)]
    pts = np.concatenate([R, G])
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.08 * float((hi - lo).max())
    lo, hi = lo - pad, hi + pad
    span = hi - lo
    ax_w = 5.4  # inches for the clouds; the text column to their right is 4.6 inches
    ax_h = ax_w * span[1] / span[0]
    fig_h = max(ax_h + 0.6, 4.4)
    fig = Figure(figsize=(ax_w + 4.8, fig_h), dpi=100)
    ax = fig.add_axes([0.1 / (ax_w + 4.8), 0.1 / fig_h, ax_w / (ax_w + 4.8), ax_h / fig_h])
    bare_axes(ax, lo, hi)
    for P, mu, (w, h, ang), color, who in ((R, mu1, ells[0], FWD, "real"), (G, mu2, ells[1], REV, "generated")):
        ax.plot(P[:, 0], P[:, 1], "o", ms=2.6, alpha=0.35, color=color, gid=f"points_{who}",
                label=f"features of {who} images")
        ax.add_patch(Ellipse(tuple(mu), w, h, angle=ang, fill=False, lw=2.2, color=color,
                             gid=f"ellipse_{who}", zorder=4))
        ax.plot(*mu, marker="X", ms=12, color=color, mec="white", mew=1.2, ls="none", gid=f"mean_{who}",
                zorder=5)
    ax.add_patch(FancyArrowPatch(tuple(mu1), tuple(mu2), arrowstyle="<|-|>", mutation_scale=14, color=INK,
                                 lw=1.8, shrinkA=6, shrinkB=6, gid="mean_gap", zorder=6))
    ax.legend(loc="upper left", fontsize=9.5, framealpha=0.9, edgecolor="none", markerscale=2.5)
    ax.set_title("the Gaussians FID fits: mean (cross) and 2-sigma ellipse", fontsize=10.5)

    share = 100.0 * mean_term / total if total > 0 else float("nan")
    lines = [
        (r"$d^2 = \Vert\mu_1-\mu_2\Vert^2 + \mathrm{tr}\,(S_1+S_2-2(S_1S_2)^{1/2})$", INK, 12),
        ("", INK, 6),
        ("mean term (the black arrow, squared)", INK, 10.5),
        (rf"$\Vert\mu_1-\mu_2\Vert^2 = {mean_term:.2f}$", INK, 13),
        ("", INK, 6),
        ("covariance term (the ellipses' shapes)", INK, 10.5),
        (rf"$\mathrm{{tr}}\,(S_1+S_2-2(S_1S_2)^{{1/2}}) = {cov_term:.2f}$", INK, 13),
        ("", INK, 6),
        (rf"Fréchet distance $d^2 = {total:.2f}$", INK, 13),
        (f"({share:.0f} % from the means, {100 - share:.0f} % from the shapes)", "#555555", 10.5),
        ("", INK, 6),
        (f"{n} points per cloud; statistics as FID", "#777777", 9.5),
        ("computes them (sample mean, unbiased S)", "#777777", 9.5),
    ]
    x_text = (ax_w + 0.35) / (ax_w + 4.8)
    y = 1.0 - 0.5 / fig_h
    for text, color, size in lines:  # one line per entry, spaced in inches so the column fits any height
        if text:
            fig.text(x_text, y, text, ha="left", va="top", fontsize=size, color=color, gid="fd_text")
        y -= (1.9 * size / 72 if text else 0.12) / fig_h
    alt = (f"Two clouds of {n} points in the plane: features of real images (blue) and of generated images "
           f"(red), each with the Gaussian FID fits to it drawn as its mean (a cross) and its 2-sigma ellipse. "
           f"The means are ({mu1[0]:.2f}, {mu1[1]:.2f}) and ({mu2[0]:.2f}, {mu2[1]:.2f}), joined by an arrow. "
           f"The Fréchet distance d^2 = {total:.2f} splits into the mean term |mu_1 - mu_2|^2 = {mean_term:.2f} "
           f"and the covariance term tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) = {cov_term:.2f}, "
           f"{share:.0f} % and {100 - share:.0f} % of it.")
    return Schematic(fig, alt, {"real": R, "generated": G, "mu_real": mu1, "S_real": S1, "mu_gen": mu2,
                                "S_gen": S2, "mean_term": mean_term, "cov_term": cov_term, "fid": total})
