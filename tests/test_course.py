"""Tests of the chapter helpers in diffnotes/course.py that measure images."""
import math

import pytest
import torch

from diffnotes import course


def test_detail_is_the_log_mean_squared_laplacian():
    # a checkerboard of +-a: every interior Laplacian response is +-8a, so detail = log(64 a^2)
    a = 0.5
    i, j = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    board = (a * (-1.0) ** (i + j)).expand(2, 3, 8, 8)
    torch.testing.assert_close(course.detail(board), torch.full((2,), math.log(64 * a * a), dtype=torch.float64))
    # a linear ramp has no curvature: the floor of the clamp, far below any real image
    ramp = torch.linspace(-1, 1, 8).expand(1, 3, 8, 8)
    assert course.detail(ramp).item() < -20
    # blurring lowers it, noise raises it
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
    assert (course.detail(blurred) < course.detail(x)).all()


def test_contrast_and_uint8_input():
    x = torch.tensor([-1.0, 1.0]).repeat(8).reshape(1, 1, 4, 4)
    assert course.contrast(x).item() == pytest.approx(math.sqrt(16 / 15))  # unbiased std of 8 x -1, 8 x +1
    u = ((x + 1) * 127.5).round().to(torch.uint8)
    torch.testing.assert_close(course.contrast(u), course.contrast(x))
    # values beyond [-1, 1] count as the saturated pixels they become
    assert course.contrast(3 * x).item() == pytest.approx(course.contrast(x).item())
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        course.contrast(torch.zeros(3, 4, 4))


def test_paired_gap():
    mean, se = course.paired_gap(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 1.0, 1.0, 2.0]))
    assert mean == pytest.approx(1.5) and se == pytest.approx(math.sqrt(1 / 3) / 2)
    with pytest.raises(ValueError, match="paired"):
        course.paired_gap(torch.tensor([1.0]), torch.tensor([0.0]))


def test_model_card_fid_tables(tmp_path):
    card = tmp_path / "CARD.md"
    card.write_text("# card\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\ntext\n\n| samples | FID |\n|---|---|\n| x | 3.0 |\n")
    assert course.model_card_fid_tables(card) == ["| samples | FID |\n|---|---|\n| x | 3.0 |"]
    assert course.model_card_fid_tables(tmp_path / "missing.md") == []


def test_check_table_rows_and_failures(capsys):
    table = course.CheckTable()
    assert table.add("exact", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    assert table.add("within atol", 1.05, 1.0, atol=0.1, why="MC")
    assert not table.add("outside rtol", torch.tensor([1.0, 3.0]), torch.tensor([1.0, 2.0]), rtol=0.1)
    assert not table.add("nan", float("nan"), 0.0, atol=1.0)
    assert "| exact (2 values) | 2 | 2 | exact | pass |" in table.rows[0]   # the element of largest |reference|
    assert "atol 0.1 (MC)" in table.rows[1]
    assert "(worst of 2) | 3 | 2 |" in table.rows[2] and "FAIL" in table.rows[2]   # the worst element is reported
    with pytest.raises(AssertionError, match=r"outside rtol: 3 vs 2 .*nan: nan vs 0"):
        table.show()
    ok = course.CheckTable()
    ok.add("round-off", 1e-14, 0.0, atol=1e-12)
    assert "| < 1e-13 | 0 |" in ok.rows[0]   # round-off shown below the tolerance, an exact zero as 0
    ok.add("gaps", torch.tensor([1e-6, 3e-5, 2e-6]), 0.0, atol=1e-4)
    assert "| gaps (3 values) | 3e-05 | 0 |" in ok.rows[1]   # one reference for all: the largest deviation
    ok.show()   # no failure: no exception


def test_check_table_rows_do_not_depend_on_round_off():
    # two machines whose round-off differs must print the same row: the element shown is chosen by
    # the reference, not by which element happens to carry the largest round-off
    ref = torch.tensor([0.5, 1.24, -0.3], dtype=torch.float64)
    a, b = course.CheckTable(), course.CheckTable()
    a.add("x", ref + torch.tensor([1e-16, 0.0, 0.0]), ref, atol=1e-12)
    b.add("x", ref + torch.tensor([0.0, 0.0, 2e-16]), ref, atol=1e-12)
    assert a.rows == b.rows and "| 1.24 | 1.24 |" in a.rows[0]


def test_check_table_check_and_claim_raise_at_once():
    table = course.CheckTable()
    table.check("fine", 1.0, 1.0)
    with pytest.raises(AssertionError, match=r"off: 1\.5 vs 1 \(largest error 0\.5; atol 0\.1\)"):
        table.check("off", 1.5, 1.0, atol=0.1)
    table.claim("decreasing", True, "yes", "yes")
    with pytest.raises(AssertionError, match="order: saw 3 > 2, expected 3 < 2"):
        table.claim("order", False, "3 > 2", "3 < 2", why="monotone")
    assert [r.endswith("| pass |") for r in table.rows] == [True, False, True, False]
    assert "monotone" in table.rows[3]
    with pytest.raises(ValueError, match="does not fit"):
        table.add("shapes", torch.zeros(2), torch.zeros(3))


def test_show_figure_carries_alt_text(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    course.show_figure(fig, alt='A line falling from 1 to 0 "left" to right')
    bundle, kw = shown[0]
    assert 'alt="A line falling from 1 to 0 &quot;left&quot; to right"' in bundle["text/html"]
    assert bundle["text/html"].startswith('<img src="data:image/png;base64,')
    assert kw["metadata"]["image/png"]["alt"].startswith("A line falling")
    assert not plt.fignum_exists(fig.number)          # closed, so the inline backend does not show it twice
    with pytest.raises(ValueError, match="alt"):
        course.show_figure(plt.figure(), alt="  ")


def test_check_table_proved_rows():
    import sympy as sp

    x = sp.Symbol("x")
    table = course.CheckTable()
    table.proved("square of a sum", sp.expand((x + 1) ** 2 - x**2 - 2 * x - 1))
    assert "| residual 0 | 0 | exact (SymPy) | pass |" in table.rows[0]
    with pytest.raises(AssertionError, match="residual 0, x"):
        table.proved("one wrong", 0, sp.expand((x + 1) ** 2 - x**2 - x - 1))


def test_check_table_formula_rows():
    import sympy as sp

    a, b = sp.symbols("a b", positive=True)
    table = course.CheckTable()
    table.formula("a*b", a * b, lambda x, y: x * y, [a, b], rtol=1e-12)
    assert table.rows[0].startswith("| a*b: largest relative error | 0 | 0 | atol 1e-12 (200 random points")
    with pytest.raises(AssertionError):                       # check_against raises on a wrong implementation
        table.formula("a*b, wrong", a * b, lambda x, y: x * y * 1.001, [a, b], rtol=1e-12)
