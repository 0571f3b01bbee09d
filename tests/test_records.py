"""Tests of diffnotes/records.py: the measurement records of the shipped models, their reader and tables."""
import numpy as np
import pytest

from diffnotes import fid, records


def test_fid_tables_of_the_default_model():
    """The model card's two FID tables come from the recorded rows: the floor and DDIM-10 rows carry the
    recorded numbers, rows not measured say so, and a model without measurements has no tables."""
    main, nfe = records.fid_tables()
    rows = records.measurements("fid")["rows"]
    assert f"| DDIM, eta 0, 10 steps | 10 | **{rows['ddim_10']['fid']:.1f}** ({rows['ddim_10']['fid_first1000']:.1f}) |" in main
    assert f"| real test images of the stand-in (the floor at this N) | - | **{rows['real_test']['fid']:.1f}**" in main
    assert main.count("\n") == 9 and nfe.count("\n") == 5  # header, rule, 8 and 4 rows
    assert nfe.splitlines()[3].startswith(f"| 10 (Heun 9) | **{rows['ddim_10']['fid']:.1f}**")
    assert records.fid_tables("no-such-model") == []


def test_measurements_of_the_default_model():
    """The FID rows and bits/dim recorded for the default model (diffnotes/pretrained/fid/) are there, say
    which model and protocol they belong to, and hold finite numbers; other models have none; a bad kind
    is refused."""
    import math

    from diffnotes.checkpoints import DEFAULT_MODEL

    fid = records.measurements("fid")
    assert fid["model"] == DEFAULT_MODEL and "protocol" in fid and "command" in fid
    assert {"real_test", "ddim_10", "ddim_50", "dpmpp2m_10_rho7"} <= set(fid["rows"])
    for name, row in fid["rows"].items():
        assert math.isfinite(row["fid"]) and row["fid"] > 0 and row["n"] >= 1000, name
    assert fid["rows"]["real_test"]["fid"] < min(r["fid"] for k, r in fid["rows"].items() if k != "real_test")
    bpd = records.measurements("bpd")
    assert bpd["model"] == DEFAULT_MODEL and "10" in bpd["rows"]
    rows = fid["rows"].values()
    assert records.fid_half_gap() == max(abs(r["fid_first1000"] - r["fid_second1000"]) for r in rows) > 0
    with pytest.raises(ValueError, match="both halves"):
        records.fid_half_gap("no-such-model")
    assert records.measurements("fid", name="no-such-model") is None
    with pytest.raises(ValueError, match="kind must be"):
        records.measurements("is")



def test_headline_table_of_the_default_model():
    """The headline FID (10 000 samples against all training images) is recorded for the default model, and its
    table carries the recorded numbers: the samples and the floor, at N and at 2 000; other models have none."""
    res = records.measurements("headline")
    assert res["n"] == 10000 and res["n_train"] == 50000 and res["steps"] == 50
    table = records.headline_table()
    assert f"| DDIM, eta 0, 50 steps | 10 000 | **{res['fid']:.1f}** |" in table
    assert f"| real test images (the floor) | 10 000 | **{res['floor']:.1f}** |" in table
    assert f"| the first 2 000 of them | 2 000 | {res['fid_first2000']:.1f} |" in table
    assert "FID against 50 000 training images" in table.splitlines()[0]
    assert 0 < res["floor"] < res["fid"] < res["fid_first2000"]
    # the first 2 000 samples are fid_rows.py's ddim_50 row: the same FID against its 2 000-image reference
    check = res["check_ddim_50_row"]
    assert abs(check["fid_again"] - check["fid_recorded"]) < 0.05
    assert records.headline_table("no-such-model") is None


def test_fid_with_halves():
    assert records.fid_with_halves({"fid": 59.171, "fid_first1000": 70.64, "fid_second1000": 72.63}) == "59.2 (70.6 / 72.6)"
    assert records.fid_with_halves({"fid": 70.64, "fid_first1000": 70.64}) == "70.6"


def test_write_record_then_read_it_back(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "RECORDS_DIR", tmp_path)
    rec = {"rows": {"ddim_50": {"fid": 49.0, "fid_first1000": 60.1, "fid_second1000": 61.3, "n": 2000}}}
    path = records.write_record("fid", "toy-model", rec)
    assert path == tmp_path / "toy-model.json" and records.measurements("fid", "toy-model") == rec
    assert records.record_path("headline", "toy-model") == tmp_path / "toy-model-headline.json"
    assert records.fid_half_gap("toy-model") == pytest.approx(1.2)
    with pytest.raises(ValueError, match="kind must be one of"):
        records.record_path("is", "toy-model")


def test_fid_scores_of_the_halves():
    """FID of all features and of each half of 1 000, each against the same reference; a set scored against its
    own statistics is 0 (to round-off)."""
    g = np.random.default_rng(0)
    feats = g.normal(size=(2000, 8))
    mu, sigma = fid.feature_statistics(feats)
    out = records.fid_scores(feats, {"mu": mu, "sigma": sigma})
    assert set(out) == {"fid", "fid_first1000", "fid_second1000"} and abs(out["fid"]) < 1e-8
    m1, s1 = fid.feature_statistics(feats[:1000])
    assert out["fid_first1000"] == pytest.approx(fid.frechet_distance(m1, s1, mu, sigma, method="eigh"))
    assert 0 < out["fid_first1000"] < 1 and 0 < out["fid_second1000"] < 1
