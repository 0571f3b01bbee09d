"""Tests of ``python -m diffnotes`` (diffnotes/cli.py), run in-process through ``cli.main``.

Everything runs on the CPU with a tiny fake ``cifar-10-batches-py`` folder, the ``tiny`` U-Net
preset trained for a few steps, and a tiny TorchScript stand-in for the Inception network.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_fake_cifar
from diffnotes import cli, data, fid

pytestmark = pytest.mark.filterwarnings("ignore::diffnotes.data.DataWarning")  # the fake data's md5

def run(argv, capsys):
    """``cli.main(argv)`` -> (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the user's CIFAR-10, data cache or Inception weights."""
    monkeypatch.delenv("DIFFNOTES_CIFAR10", raising=False)
    monkeypatch.delenv("DIFFNOTES_DEBUG", raising=False)
    monkeypatch.setenv("DIFFNOTES_DATA", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step tiny run (the train test checks it); returns (run folder, data folder)."""
    root = tmp_path_factory.mktemp("train")
    folder = make_fake_cifar(root / "data", n=4)
    out = root / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.DataWarning)
        # no warm-up and a large lr: after 2 steps the network's output is no longer ~0
        code = cli.main(["train", "--preset", "tiny", "--batch-size", "4", "--total-steps", "2",
                         "--lr", "2e-3", "--warmup-steps", "0",
                         "--log-every", "1", "--ckpt-every", "100", "--data", str(folder), "--out", str(out),
                         "--device", "cpu", "--no-progress"])
    assert code == 0
    return out, folder


# ---------------------------------------------------------------------------------------------
# help
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "sample", "fid", "bench"])
def test_help_of_each_command(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    assert out.startswith(f"usage: python -m diffnotes {command}")
    wanted = {"train": ["--resume", "--max-seconds", "--download", "--out", "--data"],
              "sample": ["--ckpt", "--sampler", "--steps", "--eta", "--spacing", "--seed", "--batch-size"],
              "fid": ["--samples", "--ref", "--data", "--ckpt", "--json"],
              "bench": ["--presets", "--batch-size", "--steps", "--seconds", "--json"]}[command]
    for flag in wanted:
        assert flag in out, flag


def test_train_has_a_flag_for_every_config_field(capsys):
    import dataclasses

    from diffnotes.recipe import TrainConfig

    _, out, _ = run(["train", "--help"], capsys)
    special = {"out_dir": "--out", "data_root": "--data"}
    for f in dataclasses.fields(TrainConfig):
        flag = special.get(f.name, "--" + f.name.replace("_", "-"))
        assert re.search(rf"{re.escape(flag)}\b", out), f.name


def test_python_dash_m_help_in_a_subprocess():
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-m", "diffnotes", "--help"], cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: python -m diffnotes")
    for command in ("train", "sample", "fid", "bench"):
        assert command in res.stdout


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
def _metric_steps(out: Path) -> list:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_checkpoint_and_resume_continues(trained, capsys):
    out, folder = trained
    for name in ("model.safetensors", "ema.safetensors", "config.json", "state.pt", "metrics.jsonl"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["step"] == 2
    assert config["train"]["preset"] == "tiny" and config["train"]["batch_size"] == 4
    assert config["train"]["data_root"] == str(folder)
    assert _metric_steps(out) == [1, 2]
    # a second run into the same folder without --resume is refused (and says how to continue)
    code, _, err = run(["train", "--out", out, "--data", folder, "--total-steps", "3", "--no-progress"], capsys)
    assert code == 1 and "--resume" in err and "Traceback" not in err
    # --resume takes the saved config (preset tiny, batch 4, ...) and only changes total_steps
    code, stdout, _ = run(["train", "--out", out, "--resume", "--total-steps", "3", "--no-progress",
                           "--device", "cpu"], capsys)
    assert code == 0
    assert "resuming" in stdout and str(out) in stdout and "step 3" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["step"] == 3 and config["train"]["preset"] == "tiny"
    assert _metric_steps(out) == [1, 2, 3]
    # changing a field that alters the trajectory is refused with the field's name
    code, _, err = run(["train", "--out", out, "--resume", "--total-steps", "4", "--lr", "1e-3",
                        "--no-progress"], capsys)
    assert code == 2 and "lr" in err


def test_train_errors(tmp_path, capsys):
    code, _, err = run(["train", "--preset", "tiny", "--out", tmp_path / "r", "--no-progress"], capsys)
    assert code == 1 and "DIFFNOTES_CIFAR10" in err and "Traceback" not in err  # no data anywhere
    folder = make_fake_cifar(tmp_path / "d", n=4)
    code, _, err = run(["train", "--lr", "-1", "--data", folder, "--out", tmp_path / "r"], capsys)
    assert code == 2 and "lr must be" in err
    code, _, err = run(["train", "--preset", "huge"], capsys)
    assert code == 2 and "invalid choice" in err
    code, _, err = run(["train", "--unet", "[1]"], capsys)
    assert code == 2 and "JSON object" in err


# ---------------------------------------------------------------------------------------------
# sample
# ---------------------------------------------------------------------------------------------
def _sample(ckpt, out, capsys, *extra):
    code, stdout, err = run(["sample", "--ckpt", ckpt, "--out", out, "--device", "cpu", "--no-progress",
                             *extra], capsys)
    assert code == 0, err
    with np.load(Path(out) / "samples.npz") as z:
        return z["images"], {k: z[k] for k in z.files}


def test_sample_files_shapes_and_dtypes(trained, tmp_path, capsys):
    run_dir, _ = trained
    images, z = _sample(run_dir, tmp_path / "s", capsys, "--n", 5, "--batch-size", 2, "--sampler", "ddim",
                        "--steps", 3, "--seed", 7)
    assert images.dtype == np.uint8 and images.shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(z["seeds"], np.arange(7, 12))
    assert str(z["sampler"]) == "ddim" and int(z["steps"]) == 3 and int(z["nfe"]) == 3
    from PIL import Image

    with Image.open(tmp_path / "s" / "grid.png") as im:  # 5 tiles of 32 px in one row, 2 px padding
        assert im.size == (5 * 34 + 2, 36) and im.mode == "RGB"
        grid = np.asarray(im)
    np.testing.assert_array_equal(grid[2:34, 2:34], images[0].transpose(1, 2, 0))
    # one DDPM step (which adds no noise: it lands on x_0) works too
    one, z = _sample(run_dir, tmp_path / "one", capsys, "--n", 2, "--sampler", "ddpm", "--steps", 1)
    assert one.shape == (2, 3, 32, 32) and int(z["nfe"]) == 1


@pytest.mark.parametrize("sampler,extra", [
    ("ddpm", ["--clip-x0", "1"]),
    ("euler_maruyama", []),
    ("pc", []),
])
def test_image_k_depends_only_on_its_seed(trained, tmp_path, capsys, sampler, extra):
    """Image k is bit-identical whatever --n and --batch-size (float64), and = image 0 of --seed k."""
    run_dir, _ = trained
    opts = ["--sampler", sampler, "--steps", 3, "--dtype", "float64", *extra]
    a, _ = _sample(run_dir, tmp_path / "a", capsys, "--n", 5, "--batch-size", 2, *opts)
    b, _ = _sample(run_dir, tmp_path / "b", capsys, "--n", 3, "--batch-size", 3, *opts)
    c, _ = _sample(run_dir, tmp_path / "c", capsys, "--n", 1, "--seed", 3, *opts)
    np.testing.assert_array_equal(a[:3], b)
    np.testing.assert_array_equal(a[3], c[0])
    # the images do differ from seed to seed (so the equalities above say something)
    for i in range(4):
        assert (a[i] != a[i + 1]).mean() > 0.5


def test_seed_property_in_float32_up_to_round_off(trained, tmp_path, capsys):
    run_dir, _ = trained
    opts = ["--sampler", "ddim", "--eta", "1", "--steps", 3]
    a, _ = _sample(run_dir, tmp_path / "a", capsys, "--n", 4, "--batch-size", 4, *opts)
    b, _ = _sample(run_dir, tmp_path / "b", capsys, "--n", 4, "--batch-size", 1, *opts)
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float32 round-off only flips rare bytes


def test_ode_rk45_runs_and_rejects_steps(trained, tmp_path, capsys):
    run_dir, _ = trained
    images, z = _sample(run_dir, tmp_path / "r", capsys, "--n", 2, "--sampler", "ode_rk45", "--rtol", "1e-3",
                        "--atol", "1e-3")
    assert images.shape == (2, 3, 32, 32) and int(z["steps"]) == -1 and float(z["nfe"]) >= 2
    code, _, err = run(["sample", "--ckpt", run_dir, "--sampler", "ode_rk45", "--steps", 5], capsys)
    assert code == 2 and "--steps does not apply" in err


def test_sample_errors(trained, tmp_path, capsys):
    run_dir, _ = trained
    code, _, err = run(["sample", "--sampler", "heun9", "--ckpt", run_dir], capsys)
    assert code == 2 and "invalid choice: 'heun9'" in err and "Traceback" not in err
    code, _, err = run(["sample", "--n", 0, "--ckpt", run_dir], capsys)
    assert code == 2 and "--n: must be an integer >= 1, got 0" in err
    code, _, err = run(["sample", "--ckpt", tmp_path / "no_such_run", "--out", tmp_path / "o"], capsys)
    assert code == 1 and "no_such_run" in err and "does not exist" in err and "Traceback" not in err
    code, _, err = run(["sample", "--ckpt", "no-such-model", "--out", tmp_path / "o"], capsys)
    assert code == 1 and "no-such-model" in err and "available" in err
    code, _, err = run(["sample", "--ckpt", run_dir, "--sampler", "ddpm", "--eta", "0.5"], capsys)
    assert code == 2 and "--eta applies only to --sampler ddim" in err
    code, _, err = run(["sample", "--ckpt", run_dir, "--sampler", "ddim", "--steps", 5000, "--no-progress"], capsys)
    assert code == 2 and "steps must be an integer in [1, 1000]" in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------
# fid
# ---------------------------------------------------------------------------------------------
def test_fid_zero_for_identical_sets_positive_otherwise(trained, tmp_path, capsys, tiny_extractor):
    run_dir, _ = trained
    opts = ["--n", 6, "--sampler", "ddpm", "--steps", 2, "--clip-x0", "1"]
    _sample(run_dir, tmp_path / "a", capsys, *opts)
    _sample(run_dir, tmp_path / "b", capsys, *opts, "--seed", 100)
    a, b = tmp_path / "a" / "samples.npz", tmp_path / "b" / "samples.npz"
    common = ["--method", "eigh", "--device", "cpu", "--no-progress"]
    ref = fid.reference_statistics(np.load(a)["images"], tmp_path / "a_stats.npz", progress=False)
    scale = np.trace(ref["sigma"])  # FID's natural scale: round-off is ~1e-9 of it (5 x 16 features)

    code, stdout, err = run(["fid", "--samples", a, "--ref", a, *common], capsys)
    assert code == 0, err
    same = json.loads((tmp_path / "a" / "fid.json").read_text())  # default: beside --samples
    assert abs(same["fid"]) < 1e-6 * scale
    assert f"FID {same['fid']:.4f}" in stdout
    assert same["n"] == 6 and same["sampler"] == "ddpm" and same["steps"] == 2 and same["device"] == "cpu"
    assert same["seconds"] > 0

    code, _, err = run(["fid", "--samples", b, "--ref", a, "--json", tmp_path / "ab.json", *common], capsys)
    assert code == 0, err
    d_ab = json.loads((tmp_path / "ab.json").read_text())["fid"]
    # the same number against a statistics file of a, and symmetric in (a, b)
    run(["fid", "--samples", b, "--ref", tmp_path / "a_stats.npz", "--json", tmp_path / "s.json", *common], capsys)
    run(["fid", "--samples", a, "--ref", b, "--json", tmp_path / "ba.json", *common], capsys)
    assert d_ab > 1e-3 * scale
    assert json.loads((tmp_path / "s.json").read_text())["fid"] == pytest.approx(d_ab, rel=1e-9)
    assert json.loads((tmp_path / "ba.json").read_text())["fid"] == pytest.approx(d_ab, rel=1e-6)

    # --n takes the first n images of --samples
    code, _, _ = run(["fid", "--samples", b, "--n", 4, "--ref", a, "--json", tmp_path / "n4.json", *common], capsys)
    assert code == 0 and json.loads((tmp_path / "n4.json").read_text())["n"] == 4


def test_fid_samples_on_the_fly(trained, tmp_path, capsys, tiny_extractor):
    run_dir, _ = trained
    ref = _sample(run_dir, tmp_path / "ref", capsys, "--n", 4, "--steps", 2)
    assert ref[0].shape[0] == 4
    code, _, err = run(["fid", "--ckpt", run_dir, "--n", 4, "--sampler", "ddim", "--steps", 2,
                        "--ref", tmp_path / "ref" / "samples.npz", "--out", tmp_path / "fly", "--method", "eigh",
                        "--device", "cpu", "--no-progress"], capsys)
    assert code == 0, err
    figures = json.loads((tmp_path / "fly" / "fid.json").read_text())
    assert figures["sampler"] == "ddim" and figures["steps"] == 2 and figures["n"] == 4
    # the same seeds and settings as the reference: the same images, so FID ~ 0 (vs its scale)
    scale = np.trace(fid.reference_statistics(ref[0], progress=False)["sigma"])
    assert abs(figures["fid"]) < 1e-6 * scale
    assert (tmp_path / "fly" / "samples.npz").is_file()


def test_fid_errors(trained, tmp_path, capsys, tiny_extractor, monkeypatch):
    run_dir, _ = trained
    code, _, err = run(["fid", "--ref", tmp_path / "x.npz"], capsys)
    assert code == 2 and "one of the arguments --samples --ckpt is required" in err
    code, _, err = run(["fid", "--samples", tmp_path / "missing.npz", "--ref", tmp_path / "x.npz"], capsys)
    assert code == 1 and "does not exist" in err
    good = tmp_path / "good.npz"
    np.savez(good, images=np.zeros((4, 3, 8, 8), np.uint8))
    code, _, err = run(["fid", "--samples", good, "--no-progress"], capsys)
    assert code == 1 and "CIFAR-10" in err  # no --ref and no data: says where to put CIFAR-10
    monkeypatch.setenv("DIFFNOTES_INCEPTION", str(tmp_path / "nope.pt"))
    code, _, err = run(["fid", "--samples", tmp_path / "missing.npz"], capsys)
    assert code == 1 and "DIFFNOTES_INCEPTION" in err and "Traceback" not in err


def test_fid_reads_and_checks_every_input_before_the_reference(tmp_path, capsys, tiny_extractor, monkeypatch):
    from diffnotes import fid

    def never(*a, **k):
        raise AssertionError("the reference statistics were computed before the samples were checked")

    monkeypatch.setattr(fid, "cifar10_reference_statistics", never)
    monkeypatch.setattr(fid, "reference_statistics", never)
    text = tmp_path / "samples.txt"
    text.write_text("not an archive")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, images=np.array([{"a": 1}], dtype=object))
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((2, 3, 8, 8), np.uint8))
    ref = tmp_path / "ref.npz"
    np.savez(ref, images=np.zeros((4, 3, 8, 8), np.uint8))
    for bad, says in ((text, "is not a NumPy .npz archive"), (pickled, "holds Python objects"),
                      (single, "single .npy array")):
        for extra in ([], ["--ref", ref]):
            code, _, err = run(["fid", "--samples", bad, "--data", tmp_path / "nowhere", "--no-progress", *extra],
                               capsys)
            assert code == 1 and says in err and "uint8 array 'images'" in err, err
            assert "allow_pickle" not in err and "Traceback" not in err
    code, _, err = run(["fid", "--samples", ref, "--ref", text, "--no-progress"], capsys)
    assert code == 1 and "--ref" in err and "is not a NumPy .npz archive" in err and "'mu' and 'sigma'" in err


# ---------------------------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------------------------
def test_bench_tiny_prints_positive_rates(tmp_path, capsys):
    from diffnotes._util import use_bf16

    out_json = tmp_path / "bench.json"
    code, stdout, err = run(["bench", "--presets", "tiny", "--devices", "cpu", "--batch-size", 2, "--steps", 1,
                             "--warmup", 1, "--sample-steps", 1, "--json", out_json, "--no-progress"], capsys)
    assert code == 0, err
    lines = stdout.splitlines()
    header = lines[0].split()
    assert header[:2] == ["preset", "device"] and "fp32" in lines[0] and "bf16" in lines[0]
    row = next(line for line in lines if line.startswith("tiny"))
    fields = row.split()
    assert fields[:2] == ["tiny", "cpu"] and fields[2].endswith("M") and fields[3] == "2"
    # side by side: train fp32, bf16, sample fp32, bf16, NFE fp32, bf16 ("-" where bf16 was not run)
    figs = fields[4:10]
    train_rate, sample_rate, nfe_rate = float(figs[0]), float(figs[2]), float(figs[4])
    assert train_rate > 0 and sample_rate > 0 and nfe_rate == pytest.approx(sample_rate, rel=1e-3)
    rows = json.loads(out_json.read_text())["rows"]
    from diffnotes.unet import count_parameters, make_unet

    fast = use_bf16("cpu")
    assert [r["bf16"] for r in rows] == ([False, True] if fast else [False])
    assert rows[0]["train_img_s"] == pytest.approx(train_rate, rel=1e-3)
    if fast:
        assert rows[1]["train_img_s"] == pytest.approx(float(figs[1]), rel=1e-3)
    else:
        assert figs[1] == figs[3] == figs[5] == "-"
    assert rows[0]["params"] == count_parameters(make_unet("tiny"))


def test_bench_errors(capsys):
    code, _, err = run(["bench", "--presets", "tiny,giant"], capsys)
    assert code == 2 and "--presets" in err and "giant" in err
    code, _, err = run(["bench", "--steps", 0], capsys)
    assert code == 2 and "--steps" in err


# ---------------------------------------------------------------------------------------------
# runs that die, and damaged checkpoints
# ---------------------------------------------------------------------------------------------
def test_a_run_killed_before_its_first_checkpoint_resumes_with_its_flags(tmp_path, capsys):
    """kill -9 before any checkpoint: --resume must take the flags the run was started with
    (from config.json, written at the start), not the defaults (preset small, batch 128, ...)."""
    folder = make_fake_cifar(tmp_path / "d", n=4)
    out = tmp_path / "B"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(
        [sys.executable, "-m", "diffnotes", "train", "--preset", "tiny", "--batch-size", "4", "--lr", "1e-3",
         "--total-steps", "100000000", "--ckpt-every", "100000000", "--log-every", "1", "--data", str(folder), "--out", str(out),
         "--device", "cpu", "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").exists():  # training has begun (a log line per step)
            assert proc.poll() is None, "the training process ended early"
            assert time.monotonic() < deadline, "the run did not start within 120 s"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "state.pt").exists()  # killed before its first checkpoint
    code, stdout, err = run(["train", "--out", out, "--resume", "--total-steps", "2", "--no-progress"], capsys)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["step"] == 2
    assert (config["train"]["preset"], config["train"]["batch_size"], config["train"]["lr"]) == ("tiny", 4, 1e-3)


def _truncate(path: Path, keep: int = 100) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def test_a_damaged_state_says_which_file_and_goes_back_one_checkpoint(trained, tmp_path, capsys):
    src, folder = trained
    out = tmp_path / "run"
    shutil.copytree(src, out)
    code, _, err = run(["train", "--out", out, "--resume", "--total-steps", "4", "--ckpt-every", "1",
                        "--no-progress", "--device", "cpu"], capsys)
    assert code == 0, err
    assert torch.load(out / "state.prev.pt", weights_only=True)["step"] == 3  # the checkpoint before the last
    _truncate(out / "state.pt")
    code, _, err = run(["train", "--out", out, "--resume", "--total-steps", "5", "--no-progress"], capsys)
    assert code == 1 and "Traceback" not in err
    assert f"{out / 'state.pt'} is damaged" in err and "state.prev.pt" in err and "mv " in err
    os.replace(out / "state.prev.pt", out / "state.pt")  # what the message says to do
    code, stdout, err = run(["train", "--out", out, "--resume", "--total-steps", "5", "--no-progress",
                             "--device", "cpu"], capsys)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["step"] == 5


def test_damaged_weights_say_so_and_resume_rewrites_them(trained, tmp_path, capsys):
    src, _ = trained
    out = tmp_path / "run"
    shutil.copytree(src, out)
    good = (out / "ema.safetensors").read_bytes()
    _truncate(out / "ema.safetensors")
    code, _, err = run(["sample", "--ckpt", out, "--out", tmp_path / "s", "--n", 1, "--steps", 2,
                        "--no-progress"], capsys)
    assert code == 1 and "Traceback" not in err
    assert f"{out / 'ema.safetensors'} is damaged" in err and "--resume" in err
    step = json.loads((out / "config.json").read_text())["step"]
    with pytest.warns(UserWarning, match="rewritten from state.pt"):
        code, _, err = run(["train", "--out", out, "--resume", "--total-steps", str(step), "--no-progress",
                            "--device", "cpu"], capsys)
    assert code == 0, err
    from safetensors.torch import load as st_load

    rewritten, before = st_load((out / "ema.safetensors").read_bytes()), st_load(good)
    assert rewritten.keys() == before.keys() and all(torch.equal(rewritten[k], before[k]) for k in before)


def test_sample_with_a_label(tmp_path, capsys):
    from diffnotes.recipe import TrainConfig
    from diffnotes.train import train

    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    cfg = TrainConfig(preset="tiny", unet={"num_classes": 3}, total_steps=1, batch_size=4,
                      out_dir=str(tmp_path / "cond"))
    train(cfg, images, labels=torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), progress=False)
    for label in ("2", "cycle"):
        images_l, z = _sample(tmp_path / "cond", tmp_path / f"s{label}", capsys, "--n", 3, "--steps", 2,
                              "--label", label)
        assert images_l.shape == (3, 3, 32, 32) and int(z["label"]) == (2 if label == "2" else -2)
    code, _, err = run(["sample", "--ckpt", tmp_path / "cond", "--out", tmp_path / "bad", "--label", "3",
                        "--n", 1, "--steps", 2, "--no-progress"], capsys)
    assert code == 2 and "0..2" in err
    code, _, err = run(["sample", "--ckpt", tmp_path / "cond", "--label", "x", "--n", 1], capsys)
    assert code == 2 and "class index" in err
