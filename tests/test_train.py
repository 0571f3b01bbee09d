"""Tests for diffnotes.train: config, LR warm-up, EMA, Algorithm 1, checkpoints, exact resume, DDP."""
import contextlib
import copy
import json
import math
import os
import signal
import socket
import sys
import time
import warnings

import pytest
import torch
from safetensors.torch import load_file

import diffnotes.checkpoints as ck
import diffnotes.recipe as rc
import diffnotes.train as tr
from diffnotes.data import ImageLoader
from diffnotes.forward import q_sample
from diffnotes.losses import nearest_log_snr_index
from diffnotes.checkpoints import export_weights, load_checkpoint, pretrained
from diffnotes.recipe import EMA, TrainConfig, ema_decay_at, warmup_lr
from diffnotes.schedules import linear_schedule, make_schedule
from diffnotes.train import train, train_step
from diffnotes._util import atomic_write
from diffnotes.unet import ToyMLP, UNet, make_unet


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8, generator=g)


def _cfg(out_dir, **kw):
    """A run that takes well under a second: 12 images of 8x8, batch 4 (3 steps per epoch),
    a 16-channel tiny U-Net with dropout (so the global RNG matters for resume)."""
    base = dict(preset="tiny", unet={"ch": 16, "num_groups": 8}, total_steps=7, batch_size=4,
                warmup_steps=3, ckpt_every=2, log_every=2, lr=1e-3, out_dir=str(out_dir))
    base.update(kw)
    return TrainConfig(**base)


def _state(result):
    return {k: v.clone() for k, v in result.model.state_dict().items()}


def _assert_bitwise_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --------------------------------------------------------------------------- config
def test_config_defaults_are_the_papers():
    c = TrainConfig()
    # Ho et al. 2020, appendix B / sec. 4
    assert (c.T, c.lr, c.batch_size, c.warmup_steps, c.grad_clip, c.ema_decay, c.schedule) == (
        1000, 2e-4, 128, 5000, 1.0, 0.9999, "linear")
    assert (c.preset, c.ema_warmup, c.hflip) == ("small", True, True)


def test_config_round_trip_through_json():
    c = TrainConfig(preset="tiny", unet={"ch_mult": (1, 2), "ch": 16}, dropout=0.0, grad_clip=None)
    d = json.loads(json.dumps(c.to_dict()))
    assert d["unet"]["ch_mult"] == [1, 2]
    assert TrainConfig.from_dict(d) == c
    # integral floats become ints, ints become floats where a float is expected
    c2 = TrainConfig(total_steps=10.0, lr=1)
    assert isinstance(c2.total_steps, int) and isinstance(c2.lr, float)


def test_config_errors_name_every_bad_field():
    with pytest.raises(ValueError, match=r"unknown TrainConfig fields \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 1e-4})
    with pytest.raises(ValueError) as err:
        TrainConfig(lr=-1.0, batch_size=0, schedule="quadratic", preset="huge", ema_decay=1.5)
    msg = str(err.value)
    for name in ("lr", "batch_size", "schedule", "preset", "ema_decay"):
        assert f"{name} must" in msg
    with pytest.raises(ValueError, match="total_steps must be an integer"):
        TrainConfig(total_steps=2.5)
    with pytest.raises(ValueError, match="ema_warmup must be True or False"):
        TrainConfig(ema_warmup=1)
    with pytest.raises(ValueError, match="unet has unknown keys"):
        TrainConfig(unet={"dropout": 0.2})
    with pytest.raises(ValueError, match="grad_clip"):
        TrainConfig(grad_clip=0.0)


def test_model_kwargs_order_of_precedence():
    c = TrainConfig(preset="tiny", unet={"ch": 16}, dropout=0.0)
    kw = c.model_kwargs((1, 16, 16))
    assert kw["ch"] == 16 and kw["dropout"] == 0.0 and kw["in_channels"] == 1 and kw["image_size"] == 16


# --------------------------------------------------------------------------- LR and EMA
def test_warmup_lr():
    assert warmup_lr(0, 2e-4, 5000) == pytest.approx(2e-4 / 5000)
    assert warmup_lr(2499, 2e-4, 5000) == pytest.approx(1e-4)
    assert warmup_lr(4999, 2e-4, 5000) == 2e-4
    assert warmup_lr(10**6, 2e-4, 5000) == 2e-4
    assert warmup_lr(0, 2e-4, 0) == 2e-4
    with pytest.raises(ValueError, match="step must be >= 0"):
        warmup_lr(-1, 2e-4, 10)


def test_ema_warmup_formula():
    # d_s = min(d, (1+s)/(10+s)): 0.1 at the first update, 0.5 at s=8, capped at d
    assert ema_decay_at(0, 0.9999) == pytest.approx(0.1)
    assert ema_decay_at(8, 0.9999) == pytest.approx(0.5)
    assert ema_decay_at(90, 0.9999) == pytest.approx(0.91)
    # the cap takes over where (1+s)/(10+s) = d, i.e. s = (10d-1)/(1-d) = 89990
    assert ema_decay_at(89989, 0.9999) < 0.9999
    assert ema_decay_at(89990, 0.9999) == pytest.approx(0.9999, abs=1e-12)
    assert ema_decay_at(10**7, 0.9999) == 0.9999
    assert ema_decay_at(0, 0.9999, warmup=False) == 0.9999
    ds = [ema_decay_at(s, 0.999) for s in range(0, 20000, 7)]
    assert all(a <= b for a, b in zip(ds, ds[1:]))


def test_ema_update_is_the_convex_combination():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).double()
    ema = EMA(m, decay=0.99)
    old = {k: v.clone() for k, v in m.state_dict().items()}
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    m.train()(torch.randn(8, 3, dtype=torch.float64))  # changes the BatchNorm buffers
    new = m.state_dict()
    d = ema.update(m, step=4)
    assert d == pytest.approx(5 / 14)
    for k, s in ema.shadow.items():
        if s.dtype.is_floating_point:
            torch.testing.assert_close(s, d * old[k] + (1 - d) * new[k], rtol=1e-14, atol=1e-14)
        else:  # num_batches_tracked: copied
            assert torch.equal(s, new[k])
    # copy_to / state_dict / load_state_dict
    target = copy.deepcopy(m)
    ema.copy_to(target)
    _assert_bitwise_equal(target.state_dict(), ema.state_dict())
    ema2 = EMA(m, decay=0.99)
    ema2.load_state_dict(ema.state_dict())
    _assert_bitwise_equal(ema2.shadow, ema.shadow)
    with pytest.raises(ValueError, match="keys do not match"):
        ema2.load_state_dict({"x": torch.zeros(1)})
    with pytest.raises(ValueError, match="decay"):
        EMA(m, decay=1.5)


# --------------------------------------------------------------------------- Algorithm 1
def test_train_step_is_algorithm_1():
    """Replays the random draws (t first, then eps) and does the same update by hand."""
    torch.manual_seed(0)
    model = make_unet("tiny", image_size=8, ch=16, dropout=0.0).double()
    with torch.no_grad():  # leave the zero initialisation so that the gradient reaches every layer
        model.conv_out.weight.normal_(0, 0.1)
    twin = copy.deepcopy(model)
    sched = linear_schedule(100)
    x_0 = torch.rand(4, 3, 8, 8, dtype=torch.float64) * 2 - 1
    opt, opt_twin = (torch.optim.Adam(m.parameters(), lr=1.0) for m in (model, twin))

    loss = train_step(model, x_0, sched, opt, lr=1e-3, grad_clip=0.5,
                      generator=torch.Generator().manual_seed(7))

    g = torch.Generator().manual_seed(7)
    t = torch.randint(0, 100, (4,), generator=g)
    eps = torch.randn(x_0.shape, generator=g, dtype=torch.float64)
    ab = sched.alpha_bar[t].reshape(-1, 1, 1, 1)
    x_t = ab.sqrt() * x_0 + (1 - ab).sqrt() * eps  # eq. 4 written out
    ref = ((eps - twin(x_t, t)) ** 2).mean()
    ref.backward()
    torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.5)
    for group in opt_twin.param_groups:
        group["lr"] = 1e-3
    opt_twin.step()

    assert loss.ndim == 0 and not loss.requires_grad
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=1e-12)
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=k)
    assert opt.param_groups[0]["lr"] == 1e-3


def test_training_reduces_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = make_unet("tiny", image_size=8, ch=16, dropout=0.0)
    sched = make_schedule("linear")
    x_0 = torch.rand(8, 3, 8, 8) * 2 - 1

    def held_out_loss():  # the same 128 (t, eps) draws every time
        g = torch.Generator().manual_seed(123)
        xs = x_0.repeat(16, 1, 1, 1)
        t = torch.randint(0, 1000, (xs.shape[0],), generator=g)
        eps = torch.randn(xs.shape, generator=g)
        with torch.no_grad():
            return float(((model(q_sample(xs, sched.alpha_bar[t], eps=eps), t) - eps) ** 2).mean())

    before = held_out_loss()
    assert before == pytest.approx(1.0, abs=0.05)  # eps_hat = 0 at init: the loss is E[eps^2] = 1
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        train_step(model, x_0, sched, opt, grad_clip=1.0, generator=g)
    assert held_out_loss() < 0.6 * before  # about 0.41 with these seeds


def test_train_step_errors():
    model = make_unet("tiny", image_size=8, ch=16)
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="x_0 must be a floating-point tensor"):
        train_step(model, torch.zeros(2, 3, 8, 8, dtype=torch.uint8), make_schedule("linear"), opt)
    with pytest.raises(ValueError, match="grad_clip"):
        train_step(model, torch.zeros(2, 3, 8, 8), make_schedule("linear"), opt, grad_clip=-1.0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        make_schedule("sigmoid")


# --------------------------------------------------------------------------- the loop, files
def test_train_writes_checkpoints_and_metrics(tmp_path, images):
    cfg = _cfg(tmp_path / "run")
    r = train(cfg, images, progress=False)
    assert (r.step, r.stop_reason) == (7, "done")
    out = tmp_path / "run"
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "ema.safetensors", "metrics.jsonl", "model.safetensors", "state.prev.pt", "state.pt"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [2, 4, 6, 7]
    assert all(set(row) == {"step", "loss", "lr", "img_per_s", "time"} for row in rows)
    assert rows[0]["lr"] == pytest.approx(warmup_lr(1, 1e-3, 3))
    assert all(math.isfinite(row["loss"]) and row["img_per_s"] > 0 for row in rows)
    config = json.loads((out / "config.json").read_text())
    assert config["step"] == 7 and config["train"] == cfg.to_dict()
    assert config["schedule"] == {"name": "linear", "T": 1000}
    assert config["model"]["kwargs"]["image_size"] == 8 and config["model"]["kwargs"]["ch"] == 16
    # the raw weights on disk are the returned model's
    _assert_bitwise_equal(load_file(out / "model.safetensors"), r.model.state_dict())
    _assert_bitwise_equal(load_file(out / "ema.safetensors"), r.ema.state_dict())
    # a finished run is not overwritten by accident
    with pytest.raises(FileExistsError, match="resume=True"):
        train(cfg, images, progress=False)
    # ... and resuming a finished run does nothing
    again = train(cfg, images, progress=False, resume=True)
    assert again.step == 7
    _assert_bitwise_equal(_state(again), _state(r))


def test_checkpoint_round_trip(tmp_path, images):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    r = train(_cfg(tmp_path, total_steps=2), images, progress=True)
    assert torch.equal(torch.rand(3), expected)  # the caller's global RNG is left as it was
    x = torch.randn(3, 3, 8, 8)
    t = torch.tensor([0, 500, 999])
    raw, ema = load_checkpoint(tmp_path, ema=False), load_checkpoint(tmp_path)
    assert not raw.training and not ema.training
    with torch.no_grad():
        assert torch.equal(raw(x, t), r.model.eval()(x, t))
        assert torch.equal(ema(x, t), r.ema_model()(x, t))
        assert not torch.equal(raw(x, t), ema(x, t))
    torch.testing.assert_close(ema.schedule.alpha_bar, linear_schedule(1000).alpha_bar, rtol=0, atol=0)
    assert ema.config["step"] == 2 and ema.config["train"]["preset"] == "tiny"
    # a weights file can be given directly (its config is config.json beside it)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(tmp_path / "model.safetensors")(x, t), raw(x, t))
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_checkpoint(tmp_path / "nothing.safetensors")


def test_export_and_pretrained(tmp_path, images):
    run = tmp_path / "run"
    r = train(_cfg(run, total_steps=2), images, progress=False)
    root = tmp_path / "pretrained"
    export_weights(run, root / "toy-cifar.safetensors", dtype="bfloat16")
    stored = load_file(root / "toy-cifar.safetensors")
    assert all(v.dtype == torch.bfloat16 for v in stored.values())
    meta = json.loads((root / "toy-cifar.json").read_text())
    assert meta["dtype"] == "bfloat16" and meta["weights"] == "ema" and meta["step"] == 2
    m = pretrained("toy-cifar", root=root)
    assert not m.training and m.schedule.T == 1000 and m.config["model"]["class"] == "UNet"
    for k, v in m.state_dict().items():  # float32 copies of the bf16-rounded EMA weights
        assert v.dtype == torch.float32
        assert torch.equal(v, r.ema.shadow[k].to(torch.bfloat16).float()), k
    with torch.no_grad():
        x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 300])
        torch.testing.assert_close(m(x, t), r.ema_model()(x, t), atol=0.05, rtol=0.05)
    with pytest.raises(FileNotFoundError, match="available: toy-cifar"):
        pretrained("cifar10-small", root=root)
    with pytest.raises(FileNotFoundError, match="available: none"):
        pretrained("cifar10-small", root=tmp_path / "empty")
    with pytest.raises(ValueError, match="plain model name"):
        pretrained("../run/ema", root=root)
    with pytest.raises(ValueError, match=r"\.safetensors"):
        export_weights(run, root / "x.bin")
    with pytest.raises(ValueError, match="dtype must be one of"):
        export_weights(run, root / "x.safetensors", dtype="float16")
    # float32 (the default): the EMA weights exactly as trained
    export_weights(run, root / "toy-f32.safetensors")
    assert json.loads((root / "toy-f32.json").read_text())["dtype"] == "float32"
    m32 = pretrained("toy-f32", root=root)
    assert all(torch.equal(v, r.ema.shadow[k].float()) for k, v in m32.state_dict().items())


def test_atomic_write_never_leaves_a_partial_file(tmp_path):
    path = tmp_path / "w.bin"
    atomic_write(path, lambda f: f.write(b"old contents"))

    def crash(f):
        f.write(b"half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, crash)
    assert path.read_bytes() == b"old contents"
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "new.bin", crash)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.bin"]
    # the file gets the permissions of an ordinary new file (not a private temp file's 0600)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_checkpoint_crash_keeps_the_last_good_state(tmp_path, images, monkeypatch):
    cfg = _cfg(tmp_path, total_steps=2)
    train(cfg, images, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    real_save = torch.save

    def dying_save(obj, f, *a, **k):  # writes part of state.pt, then the process "dies"
        real_save(obj, f, *a, **k)
        f.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path, total_steps=4), images, progress=False, resume=True)
    monkeypatch.undo()
    # no temporary files left; the previous checkpoint was kept before the write began
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(before) | {"state.prev.pt"})
    assert (tmp_path / "state.pt").read_bytes() == before["state.pt"]
    assert (tmp_path / "state.prev.pt").read_bytes() == before["state.pt"]
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["step"] == 2


# --------------------------------------------------------------------------- exact resume
def test_resume_is_bitwise_exact(tmp_path, images, monkeypatch):
    """7 steps in one go == the same 7 steps with a stop, a crash, or Ctrl-C in the middle.

    3 steps per epoch, so the runs cross epoch boundaries; dropout is on, so the global RNG
    state must be restored as well as the noise generator, the optimizer and the EMA."""
    straight = train(_cfg(tmp_path / "a"), images, progress=False)
    ref_model, ref_ema = _state(straight), dict(straight.ema.shadow)

    # (1) stop at 4 (total_steps), resume to 7
    first = train(_cfg(tmp_path / "b", total_steps=4), images, progress=False)
    assert first.step == 4
    b = train(_cfg(tmp_path / "b"), images, progress=False, resume=True)
    _assert_bitwise_equal(_state(b), ref_model)
    _assert_bitwise_equal(b.ema.shadow, ref_ema)
    rows = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert rows == [2, 4, 6, 7]

    # (2) a crash in step 6 (0-based 5): the checkpoint of step 4 survives, 2 steps are lost
    calls = {"n": 0}
    real_step = tr.train_step

    def crashing_step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("power cut")
        return real_step(*a, **k)

    monkeypatch.setattr(tr, "train_step", crashing_step)
    with pytest.raises(RuntimeError, match="power cut"):
        train(_cfg(tmp_path / "c"), images, progress=False)
    monkeypatch.setattr(tr, "train_step", real_step)
    assert torch.load(tmp_path / "c" / "state.pt", weights_only=True)["step"] == 4
    c = train(_cfg(tmp_path / "c"), images, progress=False, resume=True)
    _assert_bitwise_equal(_state(c), ref_model)
    _assert_bitwise_equal(c.ema.shadow, ref_ema)

    # (3) Ctrl-C during step 3: the loop finishes that step, saves and returns
    calls["n"] = 0

    def interrupted_step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*a, **k)

    monkeypatch.setattr(tr, "train_step", interrupted_step)
    stopped = train(_cfg(tmp_path / "d"), images, progress=False)
    monkeypatch.setattr(tr, "train_step", real_step)
    assert (stopped.step, stopped.stop_reason) == (3, "interrupted")
    d = train(_cfg(tmp_path / "d"), images, progress=False, resume=True)
    _assert_bitwise_equal(_state(d), ref_model)
    _assert_bitwise_equal(d.ema.shadow, ref_ema)

    # the optimizer states agree as well
    sa = torch.load(tmp_path / "a" / "state.pt", weights_only=True)["optimizer"]["state"]
    sd = torch.load(tmp_path / "d" / "state.pt", weights_only=True)["optimizer"]["state"]
    for i in sa:
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[i][key], sd[i][key])


def test_max_seconds_and_resume_checks(tmp_path, images):
    r = train(_cfg(tmp_path), images, progress=False, max_seconds=0)
    assert (r.step, r.stop_reason) == (0, "max_seconds")
    assert (tmp_path / "state.pt").exists()  # even a run stopped at once can be resumed
    with pytest.raises(ValueError, match=r"lr \(saved 0.001, now 0.002\)"):
        train(_cfg(tmp_path, lr=2e-3), images, progress=False, resume=True)
    with pytest.raises(ValueError, match="trained on 12 images, got 8"):
        train(_cfg(tmp_path), images[:8], progress=False, resume=True)
    with pytest.raises(ValueError, match="images must be a uint8 tensor"):
        train(_cfg(tmp_path / "x"), images.float(), progress=False)
    with pytest.raises(ValueError, match="max_seconds"):
        train(_cfg(tmp_path / "x"), images, progress=False, max_seconds=-1)


def test_train_accepts_a_loader_and_a_dict(tmp_path, images):
    cfg = _cfg(tmp_path, total_steps=2, hflip=False)
    loader = ImageLoader(images, 4, seed=cfg.seed, flip=False)
    a = train(cfg.to_dict(), loader, progress=False)
    b = train(_cfg(tmp_path / "b", total_steps=2, hflip=False), images, progress=False)
    _assert_bitwise_equal(_state(a), _state(b))
    with pytest.raises(ValueError, match=r"batches of shape \[batch_size=4"):
        train(_cfg(tmp_path / "c"), ImageLoader(images, 3, seed=0), progress=False)


# --------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir, images, result_dir):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    # float32, as the single-process reference below computes (bf16 would be used on a bf16 CPU)
    r = train(_cfg(out_dir, total_steps=2, dropout=0.0, ckpt_every=1, log_every=1, bf16=False,
                   channels_last=False), images, progress=False, device="cpu")
    torch.save({"model": r.model.state_dict(), "ema": r.ema.state_dict()},
               os.path.join(result_dir, f"rank{rank}.pt"))


def test_ddp_two_processes_gloo(tmp_path, images):
    import torch.multiprocessing as mp

    out, res = tmp_path / "run", tmp_path / "res"
    res.mkdir()
    # fork (where available) reuses this process's imported torch: seconds faster than spawn
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = mp.start_processes(_ddp_worker, args=(2, _free_port(), str(out), images, str(res)), nprocs=2,
                             join=False, start_method=method)
    deadline = time.monotonic() + 120  # a hung collective must fail the test, not hang the suite
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the 2-process DDP run did not finish within 120 s")
    r0 = torch.load(res / "rank0.pt", weights_only=True)
    r1 = torch.load(res / "rank1.pt", weights_only=True)
    _assert_bitwise_equal(r0["model"], r1["model"])  # DDP keeps the replicas identical
    _assert_bitwise_equal(r0["ema"], r1["ema"])
    assert all(bool(torch.isfinite(v).all()) for v in r0["model"].values())
    # only rank 0 writes: one metrics line per step, and the RNG states of both ranks saved
    rows = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2]
    assert len(torch.load(out / "state.pt", weights_only=True)["rng"]) == 2

    # the same two steps in one process: each rank's half of the global batch with that
    # rank's noise, gradients averaged (float32 sums in another order: close, not bitwise)
    cfg = _cfg(out, total_steps=2, dropout=0.0, bf16=False, channels_last=False)
    torch.manual_seed(cfg.seed)
    model = UNet(**cfg.model_kwargs((3, 8, 8)))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loader = ImageLoader(images, cfg.batch_size, seed=cfg.seed, flip=cfg.hflip)
    gens = [torch.Generator().manual_seed(tr._derive_seed(cfg.seed, rank, 2)) for rank in range(2)]
    sched = make_schedule("linear")
    for step in range(2):
        x = loader.next_batch()
        losses = []
        for rank in range(2):
            part = x[rank * 2:(rank + 1) * 2]
            t = torch.randint(0, 1000, (2,), generator=gens[rank])
            eps = torch.randn(part.shape, generator=gens[rank])
            losses.append(((model(q_sample(part, sched.alpha_bar[t], eps=eps), t) - eps) ** 2).mean())
        opt.zero_grad()
        ((losses[0] + losses[1]) / 2).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        for g in opt.param_groups:
            g["lr"] = warmup_lr(step, cfg.lr, cfg.warmup_steps)
        opt.step()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(r0["model"][k], v, rtol=1e-4, atol=1e-6, msg=k)


def test_save_checkpoint_toy_mlp_with_a_custom_schedule(tmp_path):
    # any diffnotes model and any schedule round-trip (non-standard betas are stored in full)
    torch.manual_seed(0)
    model = ToyMLP(dim=2, hidden=16, depth=1)
    sched = linear_schedule(50, beta_start=1e-3, beta_end=0.05)
    ck.save_checkpoint(tmp_path, model=model, ema=EMA(model), schedule=sched, step=0)
    loaded = load_checkpoint(tmp_path, ema=False)
    x, t = torch.randn(4, 2), torch.tensor([0, 10, 20, 49])
    with torch.no_grad():
        assert torch.equal(loaded(x, t), model(x, t))
    assert torch.equal(loaded.schedule.betas, sched.betas)
    assert "betas" not in json.loads(json.dumps(ck.schedule_spec(make_schedule("cosine", 10))))
    before = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="UNet, ToyMLP or AutoencoderKL"):
        ck.save_checkpoint(tmp_path, model=torch.nn.Linear(2, 2), ema=None, schedule=sched, step=0)
    assert (tmp_path / "model.safetensors").read_bytes() == before  # nothing was overwritten


# --------------------------------------------------------------------------- class labels, init_from
def _cond_cfg(out_dir, **kw):
    return _cfg(out_dir, unet={"ch": 16, "num_groups": 8, "num_classes": 3}, **kw)


LABELS = torch.tensor([0, 1, 2] * 4)


def test_train_step_drops_labels_with_probability_p_uncond():
    """p_uncond = 1 trains only the "no label" class, p_uncond = 0 only the given labels: each gives
    the same update as passing those labels directly; in between, about p of them are dropped."""
    sched = make_schedule("linear")
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    y = torch.tensor([0, 1, 2, 0, 1, 2])

    def step(labels, p):
        torch.manual_seed(0)
        net = make_unet("tiny", ch=16, num_groups=8, num_classes=3)
        with torch.no_grad():
            for w in net.parameters():  # the zero-initialised layers (class embedding, output convs) made
                if not w.any():  # the output independent of the label: distinct labels must change it
                    w.normal_(std=0.1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        loss = train_step(net, x, sched, opt, generator=torch.Generator().manual_seed(1), y=labels, p_uncond=p)
        return float(loss), net.conv_in.weight.detach().clone()

    null = torch.full_like(y, 3)
    for p, direct in ((1.0, null), (0.0, y)):
        loss_p, w_p = step(y, p)
        loss_d, w_d = step(direct, 0.0)
        assert loss_p == loss_d and torch.equal(w_p, w_d)
    assert step(y, 1.0)[0] != step(y, 0.0)[0]
    # the dropped fraction: the draws are the generator's uniforms after t and eps
    g = torch.Generator().manual_seed(5)
    seen = []
    net = make_unet("tiny", ch=16, num_groups=8, num_classes=3)

    class Spy(torch.nn.Module):
        def forward(self, x_t, t, labels):
            seen.append(labels.clone())
            return net(x_t, t, labels)

    big = torch.zeros(4000, 3, 8, 8)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    spy = Spy()
    spy.null_class = 3
    train_step(spy, big, sched, opt, generator=g, y=torch.zeros(4000, dtype=torch.long), p_uncond=0.1)
    frac = float((seen[0] == 3).float().mean())
    assert abs(frac - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 4000)  # within 4 standard errors


def test_class_conditional_training_uses_the_labels(tmp_path, images):
    r = train(_cond_cfg(tmp_path / "c", total_steps=3, label_dropout=0.5), images, labels=LABELS, progress=False)
    assert r.model.num_classes == 3
    assert r.model.class_emb.weight.abs().sum() > 0  # the labels' embeddings were trained
    loaded = load_checkpoint(tmp_path / "c")
    assert loaded.num_classes == 3 and loaded.config["model"]["kwargs"]["num_classes"] == 3
    with pytest.raises(ValueError, match="labels"):
        train(_cond_cfg(tmp_path / "d"), images, progress=False)  # images without labels
    with pytest.raises(ValueError, match="0..2"):
        train(_cond_cfg(tmp_path / "e"), images, labels=LABELS + 1, progress=False)


def test_init_from_a_run_a_file_and_an_unconditional_checkpoint(tmp_path, images):
    src = train(_cfg(tmp_path / "src", total_steps=3, dropout=0.0), images, progress=False)
    raw, ema = _state(src), dict(src.ema.shadow)
    # a run folder: raw weights start the model, EMA weights the average; the optimizer is fresh
    r = train(_cfg(tmp_path / "a", total_steps=0, dropout=0.0, init_from=str(tmp_path / "src")), images,
              progress=False)
    _assert_bitwise_equal(_state(r), raw)
    _assert_bitwise_equal(dict(r.ema.shadow), ema)
    assert r.step == 0 and not torch.load(tmp_path / "a" / "state.pt", weights_only=True)["optimizer"]["state"]
    # a .safetensors file: both from it
    r = train(_cfg(tmp_path / "b", total_steps=0, dropout=0.0, init_from=str(tmp_path / "src" / "ema.safetensors")),
              images, progress=False)
    _assert_bitwise_equal(_state(r), ema)
    # an unconditional checkpoint starts a class-conditional network computing the same function
    r = train(_cond_cfg(tmp_path / "c", total_steps=0, dropout=0.0, init_from=str(tmp_path / "src")), images,
              labels=LABELS, progress=False)
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([1, 500, 999])
    with torch.no_grad():
        base = load_checkpoint(tmp_path / "src", ema=False)(x, t)
        for y in (torch.tensor([0, 1, 2]), None):
            torch.testing.assert_close(r.model(x, t, y), base, rtol=1e-5, atol=1e-6)
    # resuming a run started with init_from uses its own state, not the source again
    r2 = train(_cond_cfg(tmp_path / "c", total_steps=2, dropout=0.0, init_from=str(tmp_path / "src")), images,
               labels=LABELS, progress=False, resume=True)
    assert r2.step == 2
    # errors: nothing there, another architecture
    with pytest.raises(FileNotFoundError, match="init_from"):
        train(_cfg(tmp_path / "x", init_from=str(tmp_path / "nothing")), images, progress=False)
    with pytest.raises(ValueError, match="do not fit"):
        train(_cfg(tmp_path / "y", unet={"ch": 32, "num_groups": 8}, init_from=str(tmp_path / "src")), images,
              progress=False)


def test_the_shipped_default_model():
    """diffnotes.pretrained() with no argument: the class-conditional 'cpu' preset after stage 3, trained
    (its class embeddings are no longer zero, so the labels change its prediction)."""
    import diffnotes
    from diffnotes.unet import PRESETS, count_parameters

    m = diffnotes.pretrained()
    assert ck.DEFAULT_MODEL == "cifar10-cpu-3" and m.config["dtype"] == "bfloat16"
    kwargs = m.config["model"]["kwargs"]
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items() if k in PRESETS["cpu"]} == PRESETS["cpu"]
    assert count_parameters(m) == 2_737_507 and m.num_classes == 10 and not m.training
    assert m.class_emb.weight.abs().amax(1).min() > 0  # every class (and "no label") was trained
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eps_null, eps_cat = m(x, 500), m(x, 500, 3)
    assert eps_null.shape == x.shape and (eps_null - eps_cat).abs().max() > 1e-3


def test_the_default_continues_stage_2():
    """The default, cifar10-cpu-3 (MODEL_CARD.md, "Model and training"), is stage 2's network
    (cifar10-cpu) trained on: same architecture, started from it (init_from), different weights."""
    import diffnotes

    base, m = diffnotes.pretrained("cifar10-cpu"), diffnotes.pretrained()
    assert m.config["model"] == base.config["model"] and m.config["train"]["init_from"] == "cifar10-cpu"
    assert m.config["step"] == 1794 and m.config["train"]["lr"] == 2e-4
    sa, sb = base.state_dict(), m.state_dict()
    assert sa.keys() == sb.keys()
    assert max(float((sa[k] - sb[k]).abs().max()) for k in sa) > 1e-3


# --------------------------------------------------------------------------- recipe options (issue M)
RECIPE = dict(loss_weighting="min_snr", min_snr_gamma=4.0, t_sampling="log_normal", t_logsnr_mean=1.0,
              t_logsnr_std=2.0, lr_schedule="cosine", lr_decay_fraction=0.5, ema_length=0.1)


def test_recipe_defaults_are_the_original_recipe():
    c = TrainConfig()
    assert (c.loss_weighting, c.t_sampling, c.lr_schedule, c.ema_length) == ("l_simple", "uniform", "constant", None)
    assert (c.min_snr_gamma, c.edm_sigma_data, c.t_logsnr_mean, c.t_logsnr_std, c.lr_decay_fraction) == (
        5.0, 0.5, 2.4, 2.4, 1.0)
    # a config saved before these fields existed loads with the defaults, so old runs resume unchanged
    old = {k: v for k, v in c.to_dict().items() if k not in RECIPE and k != "edm_sigma_data"}
    assert TrainConfig.from_dict(old) == c
    assert set(RECIPE) | {"edm_sigma_data"} <= set(TrainConfig.TRAJECTORY_FIELDS)


def test_recipe_config_errors_name_the_field():
    with pytest.raises(ValueError) as err:
        TrainConfig(loss_weighting="p2", t_sampling="beta", lr_schedule="step", min_snr_gamma=0.0,
                    edm_sigma_data=-1.0, t_logsnr_std=0.0, lr_decay_fraction=1.5, ema_length=0.5)
    msg = str(err.value)
    for name in ("loss_weighting", "t_sampling", "lr_schedule", "min_snr_gamma", "edm_sigma_data", "t_logsnr_std",
                 "lr_decay_fraction", "ema_length"):
        assert f"{name} must" in msg, name
    with pytest.raises(ValueError, match="t_logsnr_mean must"):
        TrainConfig(t_logsnr_mean=float("nan"))
    with pytest.raises(ValueError, match="lr_decay_fraction must"):
        TrainConfig(lr_decay_fraction=0.0)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("total,fraction", [(100, 1.0), (100, 0.2), (7, 0.5), (1, 1.0)])
def test_lr_decay_is_the_base_rate_before_and_zero_at_the_end(kind, total, fraction):
    decay = max(1, round(fraction * total))
    start = total - decay
    m = [rc.lr_decay_factor(s, total, kind, fraction) for s in range(total + 3)]
    assert all(v == 1.0 for v in m[:start + 1])  # the base rate until the decay begins
    assert m[total] == 0.0 and m[total + 2] == 0.0  # zero at total_steps (and after)
    assert m[total - 1] > 0.0  # the last step still moves
    assert all(a >= b for a, b in zip(m, m[1:]))  # never increases
    if decay % 2 == 0:  # half-way through the decay both schedules are at one half
        assert m[start + decay // 2] == pytest.approx(0.5)
    if kind == "linear":
        assert m[start + 1] == pytest.approx(1 - 1 / decay)
    else:
        assert m[start + 1] == pytest.approx(0.5 * (1 + math.cos(math.pi / decay)))
    # with the warm-up: the base learning rate after the warm-up and before the decay, warm-up x decay inside
    lr = [rc.scheduled_lr(s, 1e-3, 3, total, kind, fraction) for s in range(total + 1)]
    for s in range(total + 1):
        assert lr[s] == pytest.approx(warmup_lr(s, 1e-3, 3) * m[s])
    assert lr[total] == 0.0


def test_lr_schedule_constant_is_the_warmup_and_errors():
    assert all(rc.scheduled_lr(s, 2e-4, 10, 50) == warmup_lr(s, 2e-4, 10) for s in range(80))
    assert rc.lr_decay_factor(10**6, 5, "constant") == 1.0
    with pytest.raises(ValueError, match="kind must be one of"):
        rc.lr_decay_factor(0, 10, "step")
    with pytest.raises(ValueError, match="fraction"):
        rc.lr_decay_factor(0, 10, "cosine", 0.0)
    with pytest.raises(ValueError, match="step must be"):
        rc.scheduled_lr(-1, 1e-3, 0, 10, "linear")
    with pytest.raises(ValueError, match="total_steps must be"):
        rc.lr_decay_factor(0, -1, "linear")


@pytest.mark.parametrize("sigma_rel", [0.05, 0.1, 0.2])
def test_power_ema_gamma_inverts_sigma_rel(sigma_rel):
    gamma = rc.power_ema_gamma(sigma_rel)
    assert rc.power_ema_sigma_rel(gamma) == pytest.approx(sigma_rel, rel=1e-10)
    # sigma_rel is the std of the density (gamma + 1) x^gamma on (0, 1], by quadrature
    x = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    p = (gamma + 1) * x**gamma
    mean = torch.trapezoid(x * p, x)
    std = torch.sqrt(torch.trapezoid((x - mean) ** 2 * p, x))
    assert float(std) == pytest.approx(sigma_rel, rel=1e-6)


def test_power_ema_gamma_values_and_errors():
    assert rc.power_ema_gamma(0.10) == pytest.approx(6.94, abs=0.01)  # the value EDM2 quotes for 0.10
    assert rc.power_ema_gamma(1 / math.sqrt(12)) == pytest.approx(0.0, abs=1e-6)  # gamma = 0: a plain mean
    with pytest.raises(ValueError, match="sigma_rel"):
        rc.power_ema_gamma(0.3)
    with pytest.raises(ValueError, match="sigma_rel"):
        rc.power_ema_gamma(0.0)
    with pytest.raises(ValueError, match="images_seen"):
        rc.power_ema_decay(10, 64, 6.9)
    with pytest.raises(ValueError, match="batch_size"):
        rc.power_ema_decay(100, 0, 6.9)


def test_power_ema_averages_a_fixed_fraction_of_the_images_seen():
    """Run the update rule beta = (1 - B/n)^(gamma+1) from the first step and read off the weight each
    step's weights end up with: they are about proportional to tau^gamma, their relative std is
    sigma_rel after any number of steps, and beta approaches the rule 1 - (gamma+1) B / n."""
    sigma_rel, B = 0.1, 4
    gamma = rc.power_ema_gamma(sigma_rel)
    for n_steps in (2000, 20000):
        beta = torch.tensor([rc.power_ema_decay((s + 1) * B, B, gamma) for s in range(n_steps)], dtype=torch.float64)
        assert float(beta[0]) == 0.0
        # weight of step s in the final average: (1 - beta_s) prod_{k > s} beta_k
        tail = torch.cat([torch.flip(torch.cumprod(torch.flip(beta[1:], [0]), 0), [0]),
                          torch.ones(1, dtype=torch.float64)])
        w = (1 - beta) * tail
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)
        tau = torch.arange(1, n_steps + 1, dtype=torch.float64) / n_steps
        mean = float((w * tau).sum())
        std = math.sqrt(float((w * (tau - mean) ** 2).sum()))
        assert std == pytest.approx(sigma_rel, rel=0.01)
        ref = tau**gamma / (tau**gamma).sum()
        assert float((w - ref).abs().sum()) < 0.01  # total variation from the tau^gamma profile
    n = 10**6
    assert 1 - rc.power_ema_decay(n, B, gamma) == pytest.approx((gamma + 1) * B / n, rel=1e-4)


def test_ema_with_power_gamma_counts_the_images_before():
    m = make_unet("tiny", image_size=8, ch=16)
    e = EMA(m, power_gamma=3.0, batch_size=8, images_before=792)
    assert e.decay_at(0) == pytest.approx((1 - 8 / 800) ** 4)
    assert e.decay_at(9) == pytest.approx((1 - 8 / 872) ** 4)
    fresh = EMA(m, power_gamma=3.0, batch_size=8)
    assert fresh.decay_at(0) == 0.0
    assert EMA(m, 0.99, False).decay_at(5) == 0.99  # without power_gamma: the fixed decay, as before
    with pytest.raises(ValueError, match="power_gamma"):
        EMA(m, power_gamma=-1.0)


def test_train_step_with_log_normal_t_and_weights_replays_by_hand():
    """t from the log-normal log-SNR (drawn first, from the generator), then eps; the loss is
    sum_b w_t ||eps - eps_hat||^2 / (B D)."""
    torch.manual_seed(0)
    model = make_unet("tiny", image_size=8, ch=16, dropout=0.0).double()
    with torch.no_grad():
        model.conv_out.weight.normal_(0, 0.1)
    twin = copy.deepcopy(model)
    sched = linear_schedule(100)
    w = torch.linspace(0.5, 2.0, 100, dtype=torch.float64)
    x_0 = torch.rand(4, 3, 8, 8, dtype=torch.float64) * 2 - 1
    opt, opt_twin = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin))
    loss = train_step(model, x_0, sched, opt, generator=torch.Generator().manual_seed(7), t_sampling="log_normal",
                      logsnr_mean=0.0, logsnr_std=3.0, loss_weights=w)
    g = torch.Generator().manual_seed(7)
    lam = torch.randn(4, generator=g, dtype=torch.float64) * 3.0
    t = nearest_log_snr_index(sched, lam)
    eps = torch.randn(x_0.shape, generator=g, dtype=torch.float64)
    ab = sched.alpha_bar[t].reshape(-1, 1, 1, 1)
    x_t = ab.sqrt() * x_0 + (1 - ab).sqrt() * eps
    ref = (w[t] * ((eps - twin(x_t, t)) ** 2).mean((1, 2, 3))).mean()
    ref.backward()
    opt_twin.step()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=1e-12)
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=k)
    with pytest.raises(ValueError, match="t_sampling must be one of"):
        train_step(model, x_0, sched, opt, t_sampling="beta")
    with pytest.raises(ValueError, match=r"loss_weights must have shape \[T\]"):
        train_step(model, x_0, sched, opt, loss_weights=w[:10])


def test_a_run_with_the_recipe_records_it_and_resumes_exactly(tmp_path, images):
    """Every option away from its default: config.json records them, the logged learning rate is the
    cosine decay, the run resumes bitwise, and a changed total_steps is refused (it moves the decay)."""
    straight = train(_cfg(tmp_path / "a", **RECIPE), images, progress=False)
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    for k, v in RECIPE.items():
        assert config["train"][k] == v, k
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        assert row["lr"] == pytest.approx(rc.scheduled_lr(row["step"] - 1, 1e-3, 3, 7, "cosine", 0.5))
    assert rows[-1]["lr"] < rows[0]["lr"]
    # the power-function EMA: after 7 steps of 4 images the average is not the raw weights and not the start
    assert straight.ema.power_gamma == pytest.approx(rc.power_ema_gamma(0.1))
    raw, avg = _state(straight), straight.ema.shadow
    assert max(float((raw[k] - avg[k]).abs().max()) for k in raw if raw[k].is_floating_point()) > 0

    first = train(_cfg(tmp_path / "b", **RECIPE), images, progress=False, max_seconds=0)  # checkpoint at step 0
    assert first.step == 0
    with pytest.raises(ValueError, match="total_steps"):
        train(_cfg(tmp_path / "b", **dict(RECIPE, total_steps=9)), images, progress=False, resume=True)
    with pytest.raises(ValueError, match="loss_weighting"):
        train(_cfg(tmp_path / "b", **dict(RECIPE, loss_weighting="edm")), images, progress=False, resume=True)
    calls = {"n": 0}
    real_step = tr.train_step

    def interrupted_step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*a, **k)

    import unittest.mock as mock

    with mock.patch.object(tr, "train_step", interrupted_step):
        stopped = train(_cfg(tmp_path / "b", **RECIPE), images, progress=False, resume=True)
    assert (stopped.step, stopped.stop_reason) == (3, "interrupted")
    resumed = train(_cfg(tmp_path / "b", **RECIPE), images, progress=False, resume=True)
    assert resumed.step == 7
    _assert_bitwise_equal(_state(resumed), _state(straight))
    _assert_bitwise_equal(resumed.ema.shadow, straight.ema.shadow)
    # the recipe changes training: the same seed without it gives other weights
    plain = train(_cfg(tmp_path / "c"), images, progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(_state(plain).values(), _state(straight).values()))


def test_the_loop_applies_the_weighting(tmp_path, images):
    """The first step sees the same t, eps and initial weights with either weighting, so its logged
    loss is the mean of w_t x (squared error): with Min-SNR's w_t <= 1 (and < 1 wherever SNR > gamma)
    it is smaller than L_simple's, with EDM's w_t >= 1 larger (and the run warns that EDM's weight
    belongs with EDM's log-normal noise levels)."""
    first = {}
    for name, kw in [("plain", {}), ("min_snr", dict(loss_weighting="min_snr", min_snr_gamma=0.01)),
                     ("edm", dict(loss_weighting="edm"))]:
        with pytest.warns(UserWarning, match="log_normal") if name == "edm" else contextlib.nullcontext():
            r = train(_cfg(tmp_path / name, total_steps=1, log_every=1, **kw), images, progress=False)
        first[name] = json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[0])["loss"]
        assert r.step == 1 and math.isfinite(r.loss)
    assert first["min_snr"] < 0.9 * first["plain"] and first["edm"] > 1.1 * first["plain"]
    with warnings.catch_warnings():  # with the log-normal t it does not warn
        warnings.filterwarnings("error", message=".*EDM pairs it")
        train(_cfg(tmp_path / "edm-ln", total_steps=1, loss_weighting="edm", t_sampling="log_normal"), images,
              progress=False)
    assert json.loads((tmp_path / "edm" / "config.json").read_text())["train"]["loss_weighting"] == "edm"


# --------------------------------------------------------------------------- lineage
def _stage_keys(stage):
    return {k: stage[k] for k in ("name", "init_from", "steps", "batch_size", "images")}


def test_lineage_totals_sum_the_stages_and_name_what_is_missing():
    stages = [ck.stage_record("a", None, 10, 64, 100.0, "cpu"), ck.stage_record("b", "a", 5, 32, 36.0, "cuda"),
              ck.stage_record("c", "b", 3, 8, None, "cpu")]
    lin = ck.lineage_totals(stages)
    assert lin["images"] == 10 * 64 + 5 * 32 + 3 * 8
    assert lin["seconds"] == 136.0 and lin["hours"] == pytest.approx(136 / 3600, abs=1e-3)
    assert lin["cpu_hours"] == pytest.approx(100 / 3600, abs=1e-3)
    assert lin["not_recorded"] == ["seconds of stage 3 (c)"]
    assert "not_recorded" not in ck.lineage_totals(stages[:2])
    with pytest.raises(ValueError, match="stages must be a list"):
        ck.lineage_totals({"a": 1})


def test_lineage_across_init_from_and_resume(tmp_path, images):
    a = train(_cfg(tmp_path / "a", total_steps=3), images, progress=False)
    lin_a = json.loads((tmp_path / "a" / "config.json").read_text())["lineage"]
    assert len(lin_a["stages"]) == 1 and lin_a["stages"][0]["steps"] == 3 and lin_a["images"] == 12
    assert lin_a["stages"][0]["device"] == "cpu" and lin_a["stages"][0]["seconds"] > 0 and lin_a == a.lineage
    # stage 2 from stage 1's folder, with another batch size; stopped at step 2, then resumed to 5
    cfg_b = dict(total_steps=5, batch_size=2, init_from=str(tmp_path / "a"))
    train(_cfg(tmp_path / "b", **dict(cfg_b, total_steps=2)), images, progress=False)
    b = train(_cfg(tmp_path / "b", **cfg_b), images, progress=False, resume=True)
    lin_b = json.loads((tmp_path / "b" / "config.json").read_text())["lineage"]
    assert [_stage_keys(s) for s in lin_b["stages"]] == [
        _stage_keys(lin_a["stages"][0]),
        {"name": str(tmp_path / "b"), "init_from": str(tmp_path / "a"), "steps": 5, "batch_size": 2, "images": 10}]
    assert lin_b["images"] == 12 + 10 and b.lineage == lin_b
    assert lin_b["seconds"] == pytest.approx(sum(s["seconds"] for s in lin_b["stages"]), abs=0.11)
    # the power-function EMA of a continued run counts the images of the stages before it
    c = train(_cfg(tmp_path / "c", total_steps=1, ema_length=0.1, init_from=str(tmp_path / "b")), images,
              progress=False)
    assert c.ema.images_before == 22 and c.lineage["images"] == 26
    assert c.ema.decay_at(0) == pytest.approx(rc.power_ema_decay(26, 4, rc.power_ema_gamma(0.1)))
    # ... also when it resumes (the stages before it come from its state.pt)
    train(_cfg(tmp_path / "d", total_steps=1, ema_length=0.1, init_from=str(tmp_path / "b")), images,
          progress=False, max_seconds=0)
    d = train(_cfg(tmp_path / "d", total_steps=1, ema_length=0.1, init_from=str(tmp_path / "b")), images,
              progress=False, resume=True)
    assert d.ema.images_before == 22 and d.lineage["images"] == 26
    _assert_bitwise_equal(d.ema.shadow, c.ema.shadow)
    # the EMA model carries the lineage too
    assert b.ema_model().config["lineage"] == lin_b


def test_export_carries_the_lineage_of_a_shipped_parent(tmp_path, images, monkeypatch):
    """A model shipped with a lineage, a run started from it by name (--init-from), exported: the
    exported json lists the shipped stages and the run's own. The same for a run recorded before
    lineages were (no lineage in its config.json): export_weights builds it, with the seconds of state.pt."""
    shipped = tmp_path / "pretrained"
    train(_cfg(tmp_path / "s", total_steps=2), images, progress=False)
    export_weights(tmp_path / "s", shipped / "toy.safetensors")
    meta = json.loads((shipped / "toy.json").read_text())
    earlier = ck.stage_record("runs/earlier", None, 100, 64, 3600.0, "cpu")
    meta["lineage"] = ck.lineage_totals([earlier] + meta["lineage"]["stages"])
    (shipped / "toy.json").write_text(json.dumps(meta))
    monkeypatch.setattr(ck, "PRETRAINED_DIR", shipped)

    r = train(_cfg(tmp_path / "run", total_steps=3, init_from="toy"), images, progress=False)
    export_weights(tmp_path / "run", tmp_path / "out" / "next.safetensors")
    lin = json.loads((tmp_path / "out" / "next.json").read_text())["lineage"]
    assert [s["name"] for s in lin["stages"]] == ["runs/earlier", str(tmp_path / "s"), str(tmp_path / "run")]
    assert lin["images"] == 6400 + 8 + 12 and lin == r.lineage
    assert lin["cpu_hours"] >= 1.0 and pretrained("next", root=tmp_path / "out").config["lineage"] == lin

    # an old run: drop the lineage its config.json would have had
    cfg_path = tmp_path / "run" / "config.json"
    old = json.loads(cfg_path.read_text())
    del old["lineage"]
    cfg_path.write_text(json.dumps(old))
    export_weights(tmp_path / "run", tmp_path / "out" / "old.safetensors")
    lin_old = json.loads((tmp_path / "out" / "old.json").read_text())["lineage"]
    assert [_stage_keys(s) for s in lin_old["stages"]] == [_stage_keys(s) for s in lin["stages"]]
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert lin_old["stages"][-1]["seconds"] == round(state["elapsed"], 1) and lin_old["stages"][-1]["device"] == "cpu"
    # ... and one whose source is gone: the figures it cannot know are "not recorded", not guessed
    old["train"]["init_from"] = str(tmp_path / "gone")
    cfg_path.write_text(json.dumps(old))
    export_weights(tmp_path / "run", tmp_path / "out" / "orphan.safetensors")
    lin_orphan = json.loads((tmp_path / "out" / "orphan.json").read_text())["lineage"]
    assert lin_orphan["stages"][0]["images"] == "not recorded" and lin_orphan["images"] == 12
    assert "images of stage 1" in " ".join(lin_orphan["not_recorded"])


def test_the_shipped_default_model_records_its_lineage():
    """cifar10-cpu-3 (MODEL_CARD.md, "Model and training"): three stages, 12 884 + 4 074 + 1 794 steps of
    64 images = 1 200 128 images; stages 1 and 2 took 7 966 s and 3 753 s, stage 3's time was not recorded."""
    import diffnotes

    m = diffnotes.pretrained()
    lin = m.config["lineage"]
    stages = lin["stages"]
    assert [s["steps"] for s in stages] == [12884, 4074, 1794]
    assert all(s["images"] == s["steps"] * s["batch_size"] for s in stages)
    assert lin["images"] == sum(s["images"] for s in stages) == 1_200_128
    # the last stage is the shipped config's own run, and each stage starts from the one before
    assert stages[-1]["steps"] == m.config["step"] and stages[-1]["batch_size"] == m.config["train"]["batch_size"]
    assert stages[-1]["init_from"] == m.config["train"]["init_from"] == stages[-2]["shipped_as"]
    assert stages[1]["init_from"] == stages[0]["name"]
    assert lin["seconds"] == 7966 + 3753 and lin["cpu_hours"] == pytest.approx(11719 / 3600, abs=1e-3)
    assert stages[-1]["seconds"] == "not recorded" and lin["not_recorded"] == ["seconds of stage 3 (runs/cifar10-cpu-3)"]
    # stage 2, shipped as cifar10-cpu, has the first two stages of the same lineage
    base = diffnotes.pretrained("cifar10-cpu").config["lineage"]
    assert base["stages"] == stages[:2] and base["images"] == 1_085_312 and "not_recorded" not in base
    assert base["stages"][-1]["steps"] == diffnotes.pretrained("cifar10-cpu").config["step"]


def test_every_shipped_stage_extends_the_lineage_of_the_model_it_started_from():
    """Each shipped noise model after cifar10-cpu-3 (stages 4, 5, 6): its totals are the sums of its stages, its last
    stage is its own run, and the stages before it are exactly the lineage of the model named by its init_from."""
    import diffnotes

    for name, parent, steps in (("cifar10-cpu-4", "cifar10-cpu-3", 18513), ("cifar10-cpu-5", "runs/cifar10-cpu-4", 1500),
                                ("cifar10-cpu-6", "cifar10-cpu-5", 6000)):
        cfg = json.loads((ck.PRETRAINED_DIR / f"{name}.json").read_text())
        lin, stages = cfg["lineage"], cfg["lineage"]["stages"]
        assert lin["images"] == sum(s["images"] for s in stages), name
        assert stages[-1]["steps"] == steps and stages[-1]["images"] == steps * stages[-1]["batch_size"], name
        assert stages[-1]["init_from"] == cfg["train"]["init_from"] == parent, name
        parent_name = parent.rsplit("/", 1)[-1]
        before = json.loads((ck.PRETRAINED_DIR / f"{parent_name}.json").read_text())["lineage"]["stages"]
        assert [s["images"] for s in stages[:-1]] == [s["images"] for s in before], name
    six = diffnotes.pretrained("cifar10-cpu-6").config["lineage"]
    assert six["images"] == 2_864_960 == 2_480_960 + 6000 * 64


def test_the_train_command_has_the_recipe_flags(capsys):
    from diffnotes.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "--loss-weighting", "min_snr", "--min-snr-gamma", "4", "--edm-sigma-data",
                              "0.4", "--t-sampling", "log_normal", "--t-logsnr-mean", "-1.5", "--t-logsnr-std", "2",
                              "--lr-schedule", "linear", "--lr-decay-fraction", "0.2", "--ema-length", "0.1"])
    given = {k: getattr(args, k) for k in args.config_fields if hasattr(args, k)}
    assert given == dict(loss_weighting="min_snr", min_snr_gamma=4.0, edm_sigma_data=0.4, t_sampling="log_normal",
                         t_logsnr_mean=-1.5, t_logsnr_std=2.0, lr_schedule="linear", lr_decay_fraction=0.2,
                         ema_length=0.1)
    assert TrainConfig(**given).lr_schedule == "linear"
    # not given: left to the saved run (--resume) or the defaults, today's recipe
    plain = parser.parse_args(["train"])
    assert not any(hasattr(plain, k) for k in given)
    assert parser.parse_args(["train", "--ema-length", "none"]).ema_length is None
    for bad in (["--loss-weighting", "p2"], ["--t-sampling", "beta"], ["--lr-schedule", "step"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", *bad])
    assert "invalid choice" in capsys.readouterr().err


def test_a_flow_run_loads_as_a_velocity_model_and_samples_only_with_the_flow_samplers(tmp_path, images):
    """objective='flow' trains the same U-Net on the flow-matching loss; its checkpoint loads as a VelocityNet
    (called with flow time t in [0, 1]), which the registry's flow samplers draw from and the noise samplers refuse."""
    from diffnotes import flow_net
    from diffnotes.checkpoints import load_model
    from diffnotes.generate import sample_images

    run = tmp_path / "flow"
    r = train(_cfg(run, total_steps=3, objective="flow"), images, progress=False)
    assert r.config.objective == "flow" and json.loads((run / "config.json").read_text())["train"]["objective"] == "flow"
    m = load_model(run)
    assert isinstance(m, flow_net.VelocityNet) and m.schedule.T == 1000
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():  # the wrapper is the EMA U-Net behind call_velocity_net
        torch.testing.assert_close(m(x, 0.3), flow_net.call_velocity_net(r.ema_model(), x, 0.3, m.schedule))
    info = {}
    imgs = sample_images(m, 3, sampler="flow_heun", steps=2, progress=False, info=info)
    assert imgs.shape == (3, 3, 8, 8) and imgs.dtype == torch.uint8 and info["nfe"] == 3
    first = sample_images(m, 1, sampler="flow_euler", steps=2, progress=False)
    assert torch.equal(first, sample_images(m, 2, sampler="flow_euler", steps=2, progress=False)[:1])
    with pytest.raises(ValueError, match="velocity model.*flow_euler"):
        sample_images(m, 1, sampler="ddim", steps=2, progress=False)
    eps_model = load_checkpoint(_run_eps(tmp_path, images))
    with pytest.raises(ValueError, match="predicts noise"):
        sample_images(eps_model, 1, sampler="flow_euler", steps=2, progress=False)
    with pytest.raises(ValueError, match="objective 'flow'.*loss_weighting"):
        _cfg(run, objective="flow", loss_weighting="min_snr")
    with pytest.raises(ValueError, match="objective must be one of"):
        _cfg(run, objective="velocity")


def _run_eps(tmp_path, images):
    run = tmp_path / "eps"
    train(_cfg(run, total_steps=1), images, progress=False)
    return run
