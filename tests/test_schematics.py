"""Tests for diffnotes.schematics: what is drawn matches the arguments, the numbers behind the pictures
are right (checked against computations that share no code with the module), bad input raises."""
from __future__ import annotations

import io
import itertools

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.quiver import Quiver  # noqa: E402

from diffnotes import schematics as S  # noqa: E402
from diffnotes.guidance import LabelledOracle  # noqa: E402
from diffnotes.oracles import Gaussian, GaussianMixture  # noqa: E402

F64 = torch.float64


def _patches(ax, gid):
    return [p for p in ax.patches if p.get_gid() == gid]


def _render(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _no_text_overlap(fig):
    """Every pair of visible texts in the figure's axes has disjoint boxes (after a draw)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for ax in fig.axes for t in ax.texts
             if t.get_visible() and t.get_text().strip()]
    for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), f"texts overlap: {ta!r} and {tb!r}"


def _all():
    return [S.forward_reverse_chain(), S.ddim_graph(), S.ode_step_comparison(), S.guidance_field(),
            S.frechet_picture()]


# --------------------------------------------------------------------------- common contract
def test_every_schematic_is_a_figure_with_alt_text_for_show_figure(monkeypatch):
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda bundle, **kw: shown.append((bundle, kw)))
    from diffnotes import course

    for s in _all():
        fig, alt = s  # unpacks as a pair
        assert len(s) == 2 and s.fig is fig and s.alt is alt
        assert isinstance(fig, Figure)
        assert isinstance(alt, str) and len(alt.split()) >= 25
        assert _render(fig)[:8] == b"\x89PNG\r\n\x1a\n"
        course.show_figure(*s)
    assert len(shown) == len(_all())
    for (bundle, kw), s in zip(shown, _all()):
        assert bundle["text/plain"] == f"[figure] {s.alt}"
        assert kw["metadata"]["image/png"]["alt"] == s.alt


# --------------------------------------------------------------------------- forward / reverse chain
def _check_chain(s, want, gaps):
    ax = s.fig.axes[0]
    n = len(want)
    assert [p.get_label() for p in _patches(ax, "node")] == want
    assert [p.get_label() for p in _patches(ax, "forward")] == [f"{a}->{b}" for a, b in zip(want, want[1:])]
    assert [p.get_label() for p in _patches(ax, "reverse")] == [f"{b}->{a}" for a, b in zip(want, want[1:])]
    # forward arrows point right, reverse arrows left; dashed exactly across the gaps
    for gid, sign in (("forward", 1), ("reverse", -1)):
        for p, gap in zip(_patches(ax, gid), gaps):
            (x0, _), (x1, _) = p._posA_posB
            assert sign * (x1 - x0) > 0
            assert (p.get_linestyle() not in ("-", "solid")) == gap
    fwd = [t.get_text() for t in ax.texts if t.get_gid() == "forward_label"]
    rev = [t.get_text() for t in ax.texts if t.get_gid() == "reverse_label"]
    single = [k for k, g in enumerate(gaps) if not g]
    assert fwd == [rf"$q(\mathbf{{x}}_{{{want[k + 1]}}}\mid \mathbf{{x}}_{{{want[k]}}})$" for k in single]
    assert rev == [rf"$p_\theta(\mathbf{{x}}_{{{want[k]}}}\mid \mathbf{{x}}_{{{want[k + 1]}}})$" for k in single]
    assert s.data == {"labels": want, "gaps": gaps, "n_forward": n - 1, "n_reverse": n - 1}
    assert f"{n} nodes" in s.alt and f"x_{want[-1]}" in s.alt and "x_0" in s.alt
    assert "q(x_t | x_(t-1))" in s.alt and "p_theta(x_(t-1) | x_t)" in s.alt
    assert ("Dots between" in s.alt) == any(gaps)
    dots = s.alt.split("Dots between")[1].split("stand for")[0] if any(gaps) else ""
    for k in range(n - 1):
        assert (f"x_{want[k]} and x_{want[k + 1]}" in dots) == gaps[k]
    _no_text_overlap(s.fig)


@pytest.mark.parametrize("T_shown", [2, 3, 4, 6])
@pytest.mark.parametrize("T", [None, "exact", 50])
def test_chain_draws_one_node_per_step_and_arrows_both_ways(T_shown, T):
    T = T_shown - 1 if T == "exact" else T
    s = S.forward_reverse_chain(T_shown, T=T)
    want = [str(k) for k in range(T_shown - 1)] + ["T" if T is None else str(T)]
    gaps = [False] * (T_shown - 2) + [T is None or T > T_shown - 1]
    _check_chain(s, want, gaps)


@pytest.mark.parametrize("steps", [(0, 1), (0, 100, 300, 1000), (0, 1, 2, 50, 51), (0, 5)])
def test_chain_on_chosen_steps_marks_every_gap(steps):
    s = S.forward_reverse_chain(steps=steps)
    _check_chain(s, [str(t) for t in steps], [b - a > 1 for a, b in zip(steps, steps[1:])])
    assert s is not None and S.forward_reverse_chain(len(steps), steps=steps, T=steps[-1]).data == s.data


def test_chain_default_draws_four_nodes():
    assert S.forward_reverse_chain().data["labels"] == ["0", "1", "2", "T"]


def test_chain_thumbnails_show_the_given_images():
    g = torch.Generator().manual_seed(1)
    imgs = (torch.rand(3, 3, 8, 8, generator=g, dtype=F64) * 2.4 - 1.2)  # some values outside [-1, 1]
    s = S.forward_reverse_chain(3, images=imgs)
    ax = s.fig.axes[0]
    s.fig.canvas.draw()
    thumbs = [c for c in ax.child_axes if c.get_gid() == "thumbnail"]
    assert len(thumbs) == 3
    for k, th in enumerate(thumbs):
        expect = np.clip(np.round((imgs[k].clamp(-1, 1).numpy() + 1) * 127.5), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(th.images[0].get_array(), expect.transpose(1, 2, 0))
        # under its node
        (x_node, _) = _patches(ax, "node")[k].center
        bbox = th.get_window_extent()
        node_x_disp = ax.transData.transform((x_node, 0))[0]
        assert abs(0.5 * (bbox.x0 + bbox.x1) - node_x_disp) < 1.0
    assert "picture" in s.alt
    _render(s.fig)


def test_chain_rejects_bad_input():
    with pytest.raises(ValueError, match="T_shown"):
        S.forward_reverse_chain(1)
    with pytest.raises(ValueError, match="T_shown"):
        S.forward_reverse_chain(2.5)
    with pytest.raises(ValueError, match="T must"):
        S.forward_reverse_chain(5, T=3)  # a chain of 3 steps has 4 nodes
    with pytest.raises(ValueError, match="images"):
        S.forward_reverse_chain(4, images=torch.zeros(3, 3, 8, 8))
    with pytest.raises(ValueError, match="images"):
        S.forward_reverse_chain(2, images=torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="images"):
        S.forward_reverse_chain(2, images=torch.full((2, 3, 4, 4), float("nan")))
    for steps in [(1, 2, 3), (0, 2, 2), (0,), (0, 3, 1), (0, 1.5), ("a", "b")]:
        with pytest.raises(ValueError, match="steps"):
            S.forward_reverse_chain(steps=steps)
    with pytest.raises(ValueError, match="T_shown"):
        S.forward_reverse_chain(3, steps=(0, 1))
    with pytest.raises(ValueError, match="T=7"):
        S.forward_reverse_chain(steps=(0, 1, 5), T=7)


# --------------------------------------------------------------------------- DDIM
@pytest.mark.parametrize("T, tau", [(6, (6, 4, 2, 0)), (2, (2, 0)), (2, (2, 1, 0)), (9, (9, 5, 4, 1, 0)),
                                    (12, (12, 0))])
def test_ddim_graph_draws_the_three_graphs_of_its_arguments(T, tau):
    s = S.ddim_graph(T, tau)
    ax = s.fig.axes[0]
    skipped = [t for t in range(T, -1, -1) if t not in tau]
    labels = lambda gid: sorted(p.get_label() for p in _patches(ax, gid))  # noqa: E731
    assert labels("markov") == sorted(f"{t - 1}->{t}" for t in range(1, T + 1))
    assert labels("from_x0") == sorted(f"0->{t}" for t in range(1, T + 1))
    assert labels("chain") == sorted(f"{t}->{t - 1}" for t in range(2, T + 1))
    assert labels("full_step") == sorted(f"{t}->{t - 1}" for t in range(1, T + 1))
    assert [p.get_label() for p in _patches(ax, "jump")] == [f"{a}->{b}" for a, b in zip(tau, tau[1:])]
    assert sorted(int(p.get_label()) for p in _patches(ax, "skipped_node")) == sorted(skipped)
    assert len(_patches(ax, "node")) == 3 * (T + 1) - len(skipped)
    assert s.data["skipped"] == skipped and s.data["tau"] == list(tau)
    assert (s.data["n_markov"], s.data["n_from_x0"], s.data["n_chain"], s.data["n_jumps"]) == (T, T, T - 1, len(tau) - 1)
    tau_txt = ", ".join(map(str, tau))
    assert f"tau = ({tau_txt})" in s.alt and f"{len(tau) - 1} jump{'s' if len(tau) > 2 else ''} from x_{T}" in s.alt
    assert f"{T} arrows from x_0" in s.alt and "q_sigma(x_(t-1) | x_t, x_0)" in s.alt
    if skipped:
        assert "skip x_" + ", x_".join(map(str, skipped)) in s.alt
    else:
        assert "skip" not in s.alt
    _no_text_overlap(s.fig)


def test_ddim_graph_rejects_bad_tau_and_T():
    for tau, msg in [((6, 4, 4, 0), "strictly decreasing"), ((6, 2, 4, 0), "strictly decreasing"),
                     ((5, 3, 0), "start at T=6"), ((6, 3, 1), "end at 0"), ((6,), "at least two"),
                     ((6, 2.5, 0), "integer"), ("abc", "tau"), ((6, 7, 0), "strictly decreasing")]:
        with pytest.raises(ValueError, match="tau"):
            S.ddim_graph(6, tau)
        with pytest.raises(ValueError, match=msg):
            S.ddim_graph(6, tau)
    with pytest.raises(ValueError, match="T must"):
        S.ddim_graph(1, (1, 0))
    with pytest.raises(ValueError, match="T must"):
        S.ddim_graph(13, (13, 0))


# --------------------------------------------------------------------------- Euler vs Heun
def _reference(n, t_end, x0, omega, decay):
    """Euler, Heun and the exact solution by matrix algebra: (I + hA)^n x0, (I + hA + h^2 A^2/2)^n x0, e^{tA} x0."""
    A = torch.tensor([[-decay, -omega], [omega, -decay]], dtype=F64)
    h = t_end / n
    I = torch.eye(2, dtype=F64)
    x0 = torch.tensor(x0, dtype=F64)
    euler = torch.linalg.matrix_power(I + h * A, n) @ x0
    heun = torch.linalg.matrix_power(I + h * A + 0.5 * h**2 * A @ A, n) @ x0
    exact = torch.linalg.matrix_exp(t_end * A) @ x0
    return euler, heun, exact


@pytest.mark.parametrize("n, t_end, x0, omega, decay", [(1, 0.8, (2.0, 0.0), 1.0, 0.3), (3, 2.0, (0.5, -1.0), 2.0, 0.0),
                                                        (8, 1.5, (1.0, 1.0), 0.7, 1.2)])
def test_ode_points_match_matrix_algebra(n, t_end, x0, omega, decay):
    s = S.ode_step_comparison(n_steps=n, t_end=t_end, x_start=x0, omega=omega, decay=decay)
    euler, heun, exact = _reference(n, t_end, x0, omega, decay)
    np.testing.assert_allclose(s.data["euler"][-1], euler.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.data["heun"][-1], heun.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.data["exact"][-1], exact.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.data["exact_curve"][-1], exact.numpy(), rtol=1e-12, atol=1e-12)
    assert s.data["errors"]["euler"] == pytest.approx(float(torch.linalg.norm(euler - exact)), rel=1e-10)
    assert s.data["errors"]["heun"] == pytest.approx(float(torch.linalg.norm(heun - exact)), rel=1e-10)
    # what is plotted is what was computed
    ax = s.fig.axes[0]
    lines = {l.get_gid(): l for l in ax.lines if l.get_gid()}
    np.testing.assert_array_equal(np.column_stack(lines["euler"].get_data()), s.data["euler"])
    np.testing.assert_array_equal(np.column_stack(lines["heun"].get_data()), s.data["heun"])
    np.testing.assert_array_equal(np.column_stack(lines["exact"].get_data()), s.data["exact_curve"])
    assert len(s.data["euler"]) == len(s.data["heun"]) == n + 1
    e, h = s.data["errors"]["euler"], s.data["errors"]["heun"]
    assert f"lands {e:.2g} away" in s.alt and f"{h:.2g} away" in s.alt


def test_ode_one_step_draws_heun_as_the_average_of_two_slopes():
    s = S.ode_step_comparison()
    ax = s.fig.axes[0]
    arrows = {p.get_gid(): p._posA_posB for p in ax.patches if p.get_gid()}
    assert set(arrows) == {"euler_step", "step_along_d2", "heun_step", "slope_at_euler_point"}
    tip = {k: np.asarray(v[1]) for k, v in arrows.items()}
    np.testing.assert_allclose(tip["euler_step"], s.data["euler"][1], atol=1e-12)
    np.testing.assert_allclose(tip["heun_step"], s.data["heun"][1], atol=1e-12)
    np.testing.assert_allclose(tip["heun_step"], 0.5 * (tip["euler_step"] + tip["step_along_d2"]), atol=1e-12)
    assert np.allclose(arrows["slope_at_euler_point"][0], s.data["euler"][1])
    assert s.data["errors"]["heun"] < 0.5 * s.data["errors"]["euler"]
    assert "average" in s.alt and "tangent" in s.alt
    _no_text_overlap(s.fig)
    # with several steps the slope arrows are not drawn
    assert not [p for p in S.ode_step_comparison(n_steps=2).fig.axes[0].patches if p.get_gid()]


def test_heun_is_second_order_and_euler_first_order():
    steps = [4, 8, 16, 32, 64]
    errs = [S.ode_step_comparison(n_steps=n).data["errors"] for n in steps]
    for (a, b) in zip(errs, errs[1:]):
        assert b["heun"] < b["euler"]
    e_ratio = [a["euler"] / b["euler"] for a, b in zip(errs, errs[1:])]
    h_ratio = [a["heun"] / b["heun"] for a, b in zip(errs, errs[1:])]
    # halving h: Euler's error halves, Heun's falls fourfold (asymptotically)
    assert all(1.8 < r < 2.2 for r in e_ratio), e_ratio
    assert all(3.6 < r < 4.4 for r in h_ratio), h_ratio
    assert abs(e_ratio[-1] - 2) < 0.05 and abs(h_ratio[-1] - 4) < 0.1


def test_ode_rejects_bad_input():
    for kw, name in [({"n_steps": 0}, "n_steps"), ({"n_steps": 65}, "n_steps"), ({"t_end": 0.0}, "t_end"),
                     ({"omega": 0.0}, "omega"), ({"decay": -0.1}, "decay"), ({"x_start": (0.0, 0.0)}, "x_start"),
                     ({"x_start": (1.0, 2.0, 3.0)}, "x_start"), ({"x_start": (float("inf"), 0.0)}, "x_start")]:
        with pytest.raises(ValueError, match=name):
            S.ode_step_comparison(**kw)


# --------------------------------------------------------------------------- guidance field
def _autograd_score(oracle, x, a, s):
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(oracle.log_prob_t(xr, a, s).sum(), xr)
    return g


def _quivers(fig):
    return {q.get_gid(): q for ax in fig.axes for q in ax.collections if isinstance(q, Quiver) and q.get_gid()}


@pytest.mark.parametrize("y, w, a, s", [(0, 3.0, 0.8, 0.6), (2, 1.0, 0.9, 0.4), (1, 0.0, 0.5, 0.9)])
def test_guided_field_is_the_cfg_combination_of_the_scores(y, w, a, s):
    mix = GaussianMixture([0.3, 0.3, 0.4], [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]],
                          [0.25 * torch.eye(2, dtype=F64)] * 3)
    sch = S.guidance_field(mix, y=y, w=w, alpha=a, sigma=s, n_grid=9)
    q = _quivers(sch.fig)
    assert set(q) == {"unconditional", "conditional", "guided"}
    pts = torch.tensor(np.column_stack([q["guided"].X, q["guided"].Y]), dtype=F64)
    assert pts.shape == (81, 2)
    s_u = _autograd_score(mix, pts, a, s)                    # grad of the mixture's log density
    s_c = _autograd_score(mix.components[y], pts, a, s)      # grad of class y's log density
    for gid, want in (("unconditional", s_u), ("conditional", s_c), ("guided", (1 + w) * s_c - w * s_u)):
        got = np.column_stack([np.asarray(q[gid].U), np.asarray(q[gid].V)])
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-9 * float(want.abs().max()))
    np.testing.assert_allclose(sch.data["guided"], ((1 + w) * s_c - w * s_u).numpy(), rtol=1e-9, atol=1e-9)
    assert f"w = {w:g}" in sch.alt and f"class y={y}" in sch.alt and "3 Gaussian classes" in sch.alt
    assert "9 by 9" in sch.alt
    if w == 0:
        np.testing.assert_allclose(sch.data["guided"], sch.data["conditional"])
        assert sch.data["length_ratio"] is None and "w = 0 it is the class score itself" in sch.alt
    else:
        r = sch.data["length_ratio"]
        assert f"{r:.1f} times" in sch.alt and r > 1
    _render(sch.fig)


def test_guidance_field_length_ratio_is_measured_where_other_classes_win():
    mix = GaussianMixture([0.5, 0.5], [[-1.5, 0.0], [1.5, 0.0]], [0.3 * torch.eye(2, dtype=F64)] * 2)
    sch = S.guidance_field(LabelledOracle.from_mixture(mix), y=0, w=2.0, n_grid=12)
    P = torch.tensor(sch.data["points"], dtype=F64)
    # equal weights and covariances: class 1 is the more likely one exactly where x > 0
    other = P[:, 0] > 0
    g = np.linalg.norm(sch.data["guided"][other.numpy()], axis=1)
    c = np.linalg.norm(sch.data["conditional"][other.numpy()], axis=1)
    assert sch.data["length_ratio"] == pytest.approx(float(np.median(g) / np.median(c)), rel=1e-6)
    assert "2 Gaussian classes" in sch.alt


def test_guidance_field_rejects_bad_input():
    mix = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [0.3 * torch.eye(2, dtype=F64)] * 2)
    for kw, name in [({"w": -0.5}, "w"), ({"y": 2}, "y"), ({"y": -1}, "y"), ({"alpha": 0.0}, "alpha"),
                     ({"sigma": 0.0}, "sigma"), ({"n_grid": 3}, "n_grid"), ({"extent": (1, 0, 0, 1)}, "extent"),
                     ({"extent": (0, 1, 0)}, "extent")]:
        with pytest.raises(ValueError, match=name):
            S.guidance_field(mix, **kw)
    with pytest.raises(ValueError, match="mixture"):
        S.guidance_field(Gaussian([0.0, 0.0], torch.eye(2)))
    mix3 = GaussianMixture([0.5, 0.5], [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], [torch.eye(3, dtype=F64)] * 2)
    with pytest.raises(ValueError, match="2-D"):
        S.guidance_field(mix3)


# --------------------------------------------------------------------------- Fréchet picture (lesson 7)
def _cov_term_by_scipy(S1, S2):
    from scipy.linalg import sqrtm

    root = sqrtm(S1 @ S2)
    return float(np.trace(S1) + np.trace(S2) - 2.0 * np.real(np.trace(root)))


@pytest.mark.parametrize("kw", [{}, {"mean_gen": (0.0, 0.0), "cov_gen": ((1.0, 0.5), (0.5, 0.6)), "seed": 3},
                                {"mean_gen": (-2.0, 1.0), "cov_gen": ((2.0, 0.0), (0.0, 0.1)), "n": 50}])
def test_frechet_picture_terms_add_up_to_fid_and_ellipses_sit_on_the_sample_means(kw):
    from matplotlib.patches import Ellipse

    from diffnotes import fid

    s = S.frechet_picture(**kw)
    d = s.data
    n = kw.get("n", 300)
    assert d["real"].shape == d["generated"].shape == (n, 2)
    # the statistics are the sample ones, computed here with numpy
    for cloud, mu, cov in ((d["real"], d["mu_real"], d["S_real"]), (d["generated"], d["mu_gen"], d["S_gen"])):
        np.testing.assert_allclose(mu, cloud.mean(0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(cov, np.cov(cloud, rowvar=False), rtol=1e-12, atol=1e-14)
    diff = d["mu_real"] - d["mu_gen"]
    assert d["mean_term"] == pytest.approx(float(diff @ diff), rel=1e-12)
    assert d["cov_term"] == pytest.approx(_cov_term_by_scipy(d["S_real"], d["S_gen"]), rel=1e-9, abs=1e-12)
    total = fid.frechet_distance(d["mu_real"], d["S_real"], d["mu_gen"], d["S_gen"])
    assert d["fid"] == pytest.approx(total, rel=1e-12)
    assert d["mean_term"] + d["cov_term"] == pytest.approx(total, rel=1e-9, abs=1e-12)
    # the drawn ellipses: centred on the sample means, axes 2 sigma along the covariance's eigenvectors
    ax = s.fig.axes[0]
    for who, mu, cov in (("real", d["mu_real"], d["S_real"]), ("generated", d["mu_gen"], d["S_gen"])):
        (e,) = [p for p in ax.patches if isinstance(p, Ellipse) and p.get_gid() == f"ellipse_{who}"]
        np.testing.assert_allclose(e.center, mu, rtol=0, atol=1e-12)
        big, small = sorted(np.linalg.eigvalsh(cov))[::-1]
        assert e.width == pytest.approx(4 * np.sqrt(big)) and e.height == pytest.approx(4 * np.sqrt(small))
        # a point on the drawn boundary has Mahalanobis distance 2
        a = np.radians(e.angle)
        u = np.array([np.cos(a), np.sin(a)]) * e.width / 2
        v = np.array([-np.sin(a), np.cos(a)]) * e.height / 2
        for pt in (u, v):
            assert float(pt @ np.linalg.solve(cov, pt)) == pytest.approx(4.0, rel=1e-9)
        (m,) = [ln for ln in ax.lines if ln.get_gid() == f"mean_{who}"]
        np.testing.assert_allclose(np.ravel(m.get_xydata()), mu, atol=1e-12)
    # the numbers stated in the figure and the alt text are the computed ones
    texts = " ".join(t.get_text() for t in s.fig.texts)
    assert f"{d['mean_term']:.2f}" in texts and f"{d['cov_term']:.2f}" in texts and f"{d['fid']:.2f}" in texts
    assert f"= {d['mean_term']:.2f}" in s.alt and f"= {d['cov_term']:.2f}" in s.alt and f"d^2 = {d['fid']:.2f}" in s.alt
    _no_text_overlap(s.fig)


def test_frechet_picture_equal_gaussians_have_a_small_distance_and_the_seed_fixes_the_clouds():
    same = S.frechet_picture(mean_gen=(0.0, 0.0), cov_gen=((1.0, 0.5), (0.5, 0.6)), n=5000)
    # both clouds from one Gaussian: only sampling noise is left (about 2 d / n = 0.0008 here)
    assert 0 <= same.data["fid"] < 0.01
    a, b, c = S.frechet_picture(seed=1), S.frechet_picture(seed=1), S.frechet_picture(seed=2)
    np.testing.assert_array_equal(a.data["real"], b.data["real"])
    assert not np.array_equal(a.data["real"], c.data["real"])
    # a pure shift costs only the mean term
    shift = S.frechet_picture(mean_gen=(3.0, 0.0), cov_gen=((1.0, 0.5), (0.5, 0.6)), n=5000)
    assert shift.data["mean_term"] == pytest.approx(9.0, rel=0.05)
    assert shift.data["cov_term"] < 0.01


@pytest.mark.parametrize("kw", [
    {"mean_real": (0.0, 0.0, 0.0)},
    {"mean_gen": (float("nan"), 0.0)},
    {"cov_real": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))},
    {"cov_gen": ((1.0, 0.3), (0.2, 1.0))},            # not symmetric
    {"cov_gen": ((1.0, 2.0), (2.0, 1.0))},            # indefinite
    {"cov_real": ((0.0, 0.0), (0.0, 1.0))},           # singular
    {"cov_real": ((float("inf"), 0.0), (0.0, 1.0))},
    {"n": 5}, {"n": 2.5}, {"n": 10**6}, {"seed": -1},
])
def test_frechet_picture_rejects_bad_input(kw):
    with pytest.raises(ValueError):
        S.frechet_picture(**kw)
