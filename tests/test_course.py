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


def test_within_se_scales_each_error_by_its_own_standard_error():
    table = course.CheckTable()
    table.within_se("fine", [1.0, 10.0], [1.3, 10.0], [0.1, 1e-3], k=4)        # 3 SE and 0 SE
    assert "| fine (2 values) | 1 | 1.3 | atol 0.4 (4 SE; off by 3 SE) | pass |" in table.markdown()
    with pytest.raises(AssertionError, match="bad: 10 vs 10.01 is 10 standard errors off"):
        table.within_se("bad", [1.0, 10.0], [1.0, 10.01], [1.0, 1e-3], k=4)    # 10 SE in the second element
    with pytest.raises(ValueError, match="standard errors must be positive"):
        table.within_se("zero", 1.0, 1.0, 0.0)


def test_check_table_folds_into_one_verdict_line():
    table = course.CheckTable()
    table.add("a", 1.0, 1.0, atol=0.1)
    table.add("b", 2.0, 2.05, atol=0.1)
    assert table.verdict() == "✓ 2 checks passed"
    folded = table.folded()
    assert folded.startswith("<details><summary>✓ 2 checks passed") and table.markdown() in folded
    table.add("c", 3.0, 1.0, atol=0.1)
    assert table.verdict() == "✗ 1 of 3 checks failed" and table.folded().startswith("<details open>")
    with pytest.raises(AssertionError, match="c: 3 vs 1"):
        table.show()
