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


def test_fid_tables_of_the_default_model():
    """The model card's two FID tables come from the recorded rows: the floor and DDIM-10 rows carry the
    recorded numbers, rows not measured say so, and a model without measurements has no tables."""
    main, nfe = course.fid_tables()
    rows = course.measurements("fid")["rows"]
    assert f"| DDIM, eta 0, 10 steps | 10 | **{rows['ddim_10']['fid']:.1f}** ({rows['ddim_10']['fid_first1000']:.1f}) |" in main
    assert f"| real test images of the stand-in (the floor at this N) | - | **{rows['real_test']['fid']:.1f}**" in main
    assert main.count("\n") == 9 and nfe.count("\n") == 5  # header, rule, 8 and 4 rows
    assert nfe.splitlines()[3].startswith(f"| 10 (Heun 9) | **{rows['ddim_10']['fid']:.1f}**")
    assert course.fid_tables("no-such-model") == []


def test_measurements_of_the_default_model():
    """The FID rows and bits/dim recorded for the default model (diffnotes/pretrained/fid/) are there, say
    which model and protocol they belong to, and hold finite numbers; other models have none; a bad kind
    is refused."""
    import math

    from diffnotes.train import DEFAULT_MODEL

    fid = course.measurements("fid")
    assert fid["model"] == DEFAULT_MODEL and "protocol" in fid and "command" in fid
    assert {"real_test", "ddim_10", "ddim_50", "dpmpp2m_10_rho7"} <= set(fid["rows"])
    for name, row in fid["rows"].items():
        assert math.isfinite(row["fid"]) and row["fid"] > 0 and row["n"] >= 1000, name
    assert fid["rows"]["real_test"]["fid"] < min(r["fid"] for k, r in fid["rows"].items() if k != "real_test")
    bpd = course.measurements("bpd")
    assert bpd["model"] == DEFAULT_MODEL and "10" in bpd["rows"]
    rows = fid["rows"].values()
    assert course.fid_half_gap() == max(abs(r["fid_first1000"] - r["fid_second1000"]) for r in rows) > 0
    with pytest.raises(ValueError, match="both halves"):
        course.fid_half_gap("no-such-model")
    assert course.measurements("fid", name="no-such-model") is None
    with pytest.raises(ValueError, match="kind must be"):
        course.measurements("is")


@pytest.mark.filterwarnings("ignore::diffnotes.data.DataWarning")  # the fake data's md5
def test_training_gamma_uses_the_first_n_training_images(tmp_path, monkeypatch):
    """Gamma = E||eps_hat||^2 / d on the first n training images: with eps_hat(x_t) = x_t at a step where
    alpha_bar is 1 - 1e-8, Gamma is the mean square of those images' pixels (to about 1e-5; two sets of
    images differ by about 1e-3)."""

    from diffnotes import data
    from diffnotes.schedules import linear_schedule

    from test_cli import make_fake_cifar

    folder = make_fake_cifar(tmp_path)
    monkeypatch.setenv("DIFFNOTES_CIFAR10", str(folder))
    sch = linear_schedule(10, beta_start=1e-8, beta_end=1e-2)
    images = data.to_float(torch.from_numpy(data.load_cifar10(split="train")[0])).double()
    for n in (3, 20):
        got = course.training_gamma(lambda x, t: x, [0], schedule=sch, n=n)
        want = float(images[:n].pow(2).mean())
        assert got.dtype == torch.float64 and got.shape == (1,)
        assert abs(float(got[0]) - want) < 1e-4, (n, float(got[0]), want)
    half = course.training_gamma(lambda x, t: torch.full_like(x, 0.5), [0, 9], schedule=sch, n=5)
    assert torch.allclose(half, torch.full((2,), 0.25, dtype=torch.float64))
    with pytest.raises(ValueError, match="n must be between 1 and 20"):
        course.training_gamma(lambda x, t: x, [0], schedule=sch, n=21)
    monkeypatch.setenv("DIFFNOTES_CIFAR10", str(tmp_path / "missing"))
    monkeypatch.setattr(data, "cache_dir", lambda: tmp_path / "no-cache")
    with pytest.raises(FileNotFoundError, match="set DIFFNOTES_CIFAR10"):
        course.training_gamma(lambda x, t: x, [0], schedule=sch)


def test_within_se_scales_each_error_by_its_own_standard_error():
    table = course.CheckTable()
    table.within_se("fine", [1.0, 10.0], [1.3, 10.0], [0.1, 1e-3], k=4)        # 3 SE and 0 SE
    assert "| fine (2 values) | 1 | 1.3 | atol 0.4 (4 SE; off by 3 SE) | pass |" in table.markdown()
    with pytest.raises(AssertionError, match="bad: 10 vs 10.01 is 10 standard errors off"):
        table.within_se("bad", [1.0, 10.0], [1.0, 10.01], [1.0, 1e-3], k=4)    # 10 SE in the second element
    with pytest.raises(ValueError, match="standard errors must be positive"):
        table.within_se("zero", 1.0, 1.0, 0.0)


def test_headline_table_of_the_default_model():
    """The headline FID (10 000 samples against all training images) is recorded for the default model, and its
    table carries the recorded numbers: the samples and the floor, at N and at 2 000; other models have none."""
    res = course.measurements("headline")
    assert res["n"] == 10000 and res["n_train"] == 50000 and res["steps"] == 50
    table = course.headline_table()
    assert f"| DDIM, eta 0, 50 steps | 10 000 | **{res['fid']:.1f}** |" in table
    assert f"| real test images (the floor) | 10 000 | **{res['floor']:.1f}** |" in table
    assert f"| the first 2 000 of them | 2 000 | {res['fid_first2000']:.1f} |" in table
    assert "FID against 50 000 training images" in table.splitlines()[0]
    assert 0 < res["floor"] < res["fid"] < res["fid_first2000"]
    # the first 2 000 samples are fid_rows.py's ddim_50 row: the same FID against its 2 000-image reference
    check = res["check_ddim_50_row"]
    assert abs(check["fid_again"] - check["fid_recorded"]) < 0.05
    assert course.headline_table("no-such-model") is None


def test_fid_with_halves():
    assert course.fid_with_halves({"fid": 59.171, "fid_first1000": 70.64, "fid_second1000": 72.63}) == "59.2 (70.6 / 72.6)"
    assert course.fid_with_halves({"fid": 70.64, "fid_first1000": 70.64}) == "70.6"


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
