"""Tests for diffnotes.unet: the DDPM U-Net, its presets, the time embedding and the toy MLP."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import copy

from diffnotes.unet import (
    PRESETS,
    AttnBlock,
    BF16Autocast,
    ToyMLP,
    UNet,
    count_parameters,
    fast_inference,
    load_weights,
    make_unet,
    timestep_embedding,
)


def _randomise(model: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Overwrite every parameter with noise, so that zero-initialised layers no longer hide
    the dependence of the output on the inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            offset = 1.0 if "norm" in name and name.endswith("weight") else 0.0  # keep norm gains near 1
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std + offset)
    return model


@pytest.fixture(scope="module")
def ddpm():
    torch.manual_seed(0)
    return make_unet("ddpm").eval()


# --------------------------------------------------------------------------- time embedding
@settings(deadline=None, max_examples=20)
@given(st.lists(st.floats(0.0, 5000.0), min_size=1, max_size=6), st.integers(2, 70))
def test_embedding_pairs_lie_on_the_unit_circle(ts, dim):
    # e_i = sin(t w_i), e_{h+i} = cos(t w_i): each pair has squared norm 1 (exactly, up to rounding)
    e = timestep_embedding(torch.tensor(ts, dtype=torch.float64), dim)
    h = dim // 2
    assert e.shape == (len(ts), dim)
    torch.testing.assert_close(e[:, :h] ** 2 + e[:, h:2 * h] ** 2, torch.ones(len(ts), h, dtype=torch.float64))
    if dim % 2:
        assert bool((e[:, -1] == 0).all())


def test_embedding_pinned_values():
    # frequencies run geometrically from 1 down to 1/max_period
    t = torch.tensor([0, 1, 999])
    e = timestep_embedding(t, 8).double()
    h = 4
    assert torch.equal(e[0], torch.tensor([0.0] * h + [1.0] * h, dtype=torch.float64))
    freqs = torch.tensor([10000.0 ** (-i / (h - 1)) for i in range(h)], dtype=torch.float64)
    torch.testing.assert_close(e[2, :h], torch.sin(999 * freqs), atol=2e-4, rtol=0)
    torch.testing.assert_close(e[1, h:], torch.cos(freqs), atol=1e-6, rtol=0)
    assert timestep_embedding(t, 8).dtype == torch.float32
    assert timestep_embedding(t.double(), 8).dtype == torch.float64


def test_embedding_distinguishes_timesteps():
    e = timestep_embedding(torch.arange(1000), 128)
    d = torch.cdist(e, e)
    d.fill_diagonal_(float("inf"))
    assert float(d.min()) > 1e-3  # no two of the 1000 timesteps share an embedding


def test_embedding_errors():
    with pytest.raises(ValueError, match="t must have shape"):
        timestep_embedding(torch.zeros(2, 2), 8)
    with pytest.raises(ValueError, match="dim"):
        timestep_embedding(torch.zeros(2), 1)


# --------------------------------------------------------------------------- the U-Net
@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_output_shape_equals_input_shape(preset):
    torch.manual_seed(0)
    m = make_unet(preset).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = m(x, torch.tensor([0, 999]))
    assert y.shape == x.shape and y.dtype == x.dtype


def test_ddpm_has_the_papers_35_7m_parameters(ddpm):
    # Ho et al. 2020, appendix B: "Our CIFAR10 model has 35.7 million parameters"
    n = count_parameters(ddpm)
    assert abs(n - 35.7e6) / 35.7e6 < 0.01
    assert n == 35_746_307  # pinned: the count of the paper's released TF model
    with torch.no_grad():
        y = ddpm(torch.randn(1, 3, 32, 32), torch.tensor([10]))
    assert y.shape == (1, 3, 32, 32)


def test_ddpm_layout(ddpm):
    # attention at 16x16 only (level 1): 2 blocks down, 3 up, plus one in the middle
    assert sum(isinstance(m, AttnBlock) for m in ddpm.modules()) == 6
    # 4 levels x 2 + 4 levels x 3 + 2 middle residual blocks
    assert sum(type(m).__name__ == "ResBlock" for m in ddpm.modules()) == 4 * 2 + 4 * 3 + 2
    assert ddpm.temb[0].out_features == 4 * 128


def test_preset_sizes():
    tiny, small = make_unet("tiny"), make_unet("small")
    assert 1e4 < count_parameters(tiny) < 1e6
    # a few million, and small enough to ship in bf16 under 16 MiB
    assert 2e6 < count_parameters(small) and 2 * count_parameters(small) < 16 * 2**20
    assert count_parameters(tiny, trainable_only=True) == count_parameters(tiny)
    assert set(PRESETS) == {"tiny", "cpu", "small", "ddpm"}
    # the shipped CPU model: the architecture of the warm-start run in ../shared/runs/cifar10-cpu
    cpu = make_unet("cpu")
    assert count_parameters(cpu) == 2_737_507 and cpu.num_classes == 10


def test_initial_output_is_zero():
    # the output conv is zero-initialised (as in the paper's code): eps_hat = 0 at the start
    m = make_unet("tiny", image_size=16)
    with torch.no_grad():
        y = m(torch.randn(2, 3, 16, 16), torch.tensor([3, 700]))
    assert bool((y == 0).all())


def test_output_depends_on_t_and_x():
    torch.manual_seed(0)
    m = _randomise(make_unet("tiny", image_size=16, dropout=0.0)).eval().double()
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        a, b = m(x, torch.tensor([0])), m(x, torch.tensor([500]))
        c = m(x + 0.1, torch.tensor([0]))
    assert float((a - b).abs().max()) > 1e-4
    assert float((a - c).abs().max()) > 1e-4


def test_samples_in_a_batch_are_independent():
    # GroupNorm normalises each sample on its own: no information flows across the batch
    torch.manual_seed(1)
    m = _randomise(make_unet("tiny", image_size=16, dropout=0.0), seed=1).eval().double()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    t = torch.tensor([1, 200, 999])
    with torch.no_grad():
        full = m(x, t)
        for i in range(3):
            torch.testing.assert_close(full[i:i + 1], m(x[i:i + 1], t[i:i + 1]), rtol=1e-10, atol=1e-12)


def test_float_and_scalar_t_match_long_t():
    torch.manual_seed(2)
    m = _randomise(make_unet("tiny", image_size=8, dropout=0.0), seed=2).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = m(x, torch.tensor([7, 7]))
        assert torch.equal(ref, m(x, torch.tensor([7.0, 7.0])))
        assert torch.equal(ref, m(x, 7))


def test_dropout_active_only_in_train_mode():
    torch.manual_seed(3)
    m = _randomise(make_unet("tiny", image_size=8, dropout=0.5), seed=3)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([5, 6])
    with torch.no_grad():
        m.train()
        assert not torch.equal(m(x, t), m(x, t))
        m.eval()
        assert torch.equal(m(x, t), m(x, t))
    assert all(d.p == 0.0 for d in make_unet("tiny", dropout=0.0).modules() if isinstance(d, torch.nn.Dropout))


def test_non_square_and_other_resolutions():
    m = make_unet("small", ch=32).eval()  # 3 levels: sides divisible by 4
    with torch.no_grad():
        assert m(torch.randn(1, 3, 8, 12), torch.tensor([1])).shape == (1, 3, 8, 12)


def test_attention_levels_follow_image_size():
    # attn_resolutions are feature-map sizes for an image_size input
    m32 = make_unet("small", ch=32, image_size=32)
    m16 = make_unet("small", ch=32, image_size=16)
    assert [any(isinstance(a, AttnBlock) for a in lvl.attn) for lvl in m32.down] == [False, True, False]
    assert [any(isinstance(a, AttnBlock) for a in lvl.attn) for lvl in m16.down] == [True, False, False]


def test_unet_input_errors():
    m = make_unet("small", ch=32)
    t = torch.tensor([1, 2])
    with pytest.raises(ValueError, match=r"x must have shape \[B, C, H, W\]"):
        m(torch.randn(2, 3, 8, 8, 1), t)
    with pytest.raises(ValueError, match="at least 4 dimensions"):
        m(torch.randn(2, 3, 8), t)
    with pytest.raises(ValueError, match="3 channels"):
        m(torch.randn(2, 1, 8, 8), t)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*\\(levels-1\\) = 4"):
        m(torch.randn(2, 3, 10, 8), t)
    with pytest.raises(ValueError, match="floating-point"):
        m(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), t)
    with pytest.raises(ValueError, match="t must be a number or a tensor of shape \\[B\\] with B=2"):
        m(torch.randn(2, 3, 8, 8), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="t must be finite"):
        m(torch.randn(2, 3, 8, 8), torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="preset must be one of"):
        make_unet("huge")
    with pytest.raises(ValueError, match="num_groups=32 must divide"):
        make_unet("tiny", num_groups=32, ch=16)
    with pytest.raises(ValueError, match="image_size=30 must be divisible"):
        make_unet("ddpm", image_size=30)
    with pytest.raises(ValueError, match="dropout"):
        make_unet("tiny", dropout=1.0)
    with pytest.raises(TypeError):
        make_unet("tiny", channels=3)


def test_config_rebuilds_the_same_network():
    m = make_unet("tiny", ch=16, num_groups=8)
    m2 = UNet(**m.arch)
    assert [p.shape for p in m.parameters()] == [p.shape for p in m2.parameters()]


# --------------------------------------------------------------------------- toy MLP
def test_toy_mlp_shapes_and_time_dependence():
    torch.manual_seed(0)
    m = ToyMLP(dim=2, hidden=32, depth=2).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    y0, y1 = m(x, torch.zeros(5, dtype=torch.long)), m(x, torch.full((5,), 400))
    assert y0.shape == (5, 2) and y0.dtype == torch.float64
    assert float((y0 - y1).detach().abs().max()) > 1e-6
    # continuous time with t_scale: t = 0.4 at scale 1000 is index 400
    mc = ToyMLP(dim=2, hidden=32, depth=2, t_scale=1000.0).double()
    mc.load_state_dict(m.state_dict())
    torch.testing.assert_close(mc(x, torch.full((5,), 0.4, dtype=torch.float64)), y1)
    # per-sample independence
    torch.testing.assert_close(m(x[:1], torch.tensor([400])), y1[:1])
    assert ToyMLP(dim=3)(torch.randn(4, 3), 10).shape == (4, 3)


def test_toy_mlp_errors():
    m = ToyMLP(dim=2)
    with pytest.raises(ValueError, match=r"x must have shape \[B, 2\]"):
        m(torch.randn(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="B=4"):
        m(torch.randn(4, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="t_scale"):
        ToyMLP(t_scale=0.0)
    with pytest.raises(ValueError, match="dim"):
        ToyMLP(dim=0)


# ---------------------------------------------------------------------------------------------
# class labels
# ---------------------------------------------------------------------------------------------
def test_class_labels_change_the_output_and_none_is_the_null_class():
    net = _randomise(make_unet("tiny", ch=16, num_groups=8, num_classes=3)).eval()
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([5, 50, 500])
    with torch.no_grad():
        out = {y: net(x, t, torch.full((3,), y)) for y in range(4)}
        assert torch.equal(net(x, t), out[3]) and net.null_class == 3  # None means "no label"
        assert torch.equal(net(x, t, 1), out[1])  # a number is one label for the batch
        for a in range(4):
            for b in range(a):
                assert (out[a] - out[b]).abs().max() > 1e-3, (a, b)


@pytest.mark.parametrize("y, match", [(torch.tensor([0, 4]), r"0\.\.2, or 3"), (torch.tensor([-1, 0]), r"0\.\.2"),
                                      (torch.tensor([0.5, 1.0]), "integer"), (torch.tensor([0, 1, 2]), "shape")])
def test_bad_labels_are_refused(y, match):
    net = make_unet("tiny", ch=16, num_groups=8, num_classes=3)
    with pytest.raises(ValueError, match=match):
        net(torch.randn(2, 3, 8, 8), 5, y)


def test_an_unconditional_network_refuses_labels():
    net = make_unet("tiny", ch=16, num_groups=8)
    with pytest.raises(ValueError, match="unconditional"):
        net(torch.randn(2, 3, 8, 8), 5, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unconditional"):
        net.null_class


def test_an_unconditional_checkpoint_loads_into_a_conditional_network_unchanged():
    uncond = _randomise(make_unet("tiny", ch=16, num_groups=8)).eval()
    cond = make_unet("tiny", ch=16, num_groups=8, num_classes=10).eval()
    assert load_weights(cond, uncond.state_dict()) == ["class_emb.weight"]
    assert not cond.class_emb.weight.any()  # the embedding starts at zero ...
    x, t = torch.randn(4, 3, 8, 8), torch.tensor([1, 10, 100, 999])
    with torch.no_grad():
        for y in (None, torch.tensor([0, 3, 9, 10])):  # ... so every label computes the same function
            assert torch.equal(cond(x, t, y), uncond(x, t))
    with pytest.raises(ValueError, match="missing"):
        load_weights(cond, {k: v for k, v in uncond.state_dict().items() if k != "conv_in.weight"})
    with pytest.raises(ValueError, match="different shapes"):
        load_weights(make_unet("tiny", ch=32, num_groups=8), uncond.state_dict())
    with pytest.raises(ValueError, match="unexpected"):
        load_weights(uncond, cond.state_dict())


# ---------------------------------------------------------------------------------------------
# bf16 inference
# ---------------------------------------------------------------------------------------------
def test_bf16_autocast_stays_close_to_float32():
    """The fast path of sample/bench/widgets: bf16 autocast + channels-last. bf16 keeps 8 bits of
    mantissa (relative rounding 2^-9 = 0.2 %); through the network the error grows to about 1 %:
    bounded at 4 % of the output's RMS, with the output's dtype and layout those of float32."""
    net = _randomise(make_unet("cpu")).eval()
    x, t = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.linspace(0, 999, 8).long()
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 10])
    with torch.no_grad():
        ref = net(x, t, y)
        fast = BF16Autocast(copy.deepcopy(net))(x, t, y)
    assert fast.dtype == torch.float32 and fast.is_contiguous()
    rel = float((fast - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())
    assert 0 < rel < 0.04, rel  # > 0: bf16 was really used
    assert fast_inference(net, False) is net
    assert isinstance(fast_inference(net, True), BF16Autocast)
