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
    assert "| exact (worst of 2) | 1 | 1 | exact | pass |" in table.rows[0]
    assert "atol 0.1 (MC)" in table.rows[1]
    assert "| 3 | 2 |" in table.rows[2] and "FAIL" in table.rows[2]   # the worst element is reported
    with pytest.raises(AssertionError, match=r"outside rtol: 3 vs 2 .*nan: nan vs 0"):
        table.show()
    ok = course.CheckTable()
    ok.add("round-off", 1e-14, 0.0, atol=1e-12)
    assert "| < 1e-13 | < 1e-13 |" in ok.rows[0]   # round-off shown below the tolerance
    ok.show()   # no failure: no exception
