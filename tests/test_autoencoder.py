"""Latent diffusion (chapter 11): the KL autoencoder's mathematics against independent values, the network,
its training loop (resume, refusal to overwrite), the latent loader, and the latent pipeline end to end."""
import math

import pytest
import torch

from diffnotes.autoencoder import (AutoencoderKL, LatentDiffusion, gaussian_kl, latent_scale_factor, negative_elbo,
                                   psnr, reparameterize)
from diffnotes.checkpoints import export_weights, load_model
from diffnotes.data import ImageLoader
from diffnotes.generate import sample_images
from diffnotes.latent import encode_dataset, export_latent_diffusion, latent_loader, train_autoencoder
from diffnotes.schedules import make_schedule
from diffnotes.unet import UNet

from conftest import gen

SMALL = dict(ch=8, ch_mult=(1, 2, 2), num_groups=4, latent_channels=4)


def test_gaussian_kl_matches_torch_distributions_and_a_monte_carlo_estimate():
    g = gen()
    mu, logvar = torch.randn(3, 4, 2, 2, generator=g, dtype=torch.float64), \
        torch.randn(3, 4, 2, 2, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    exact = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), exact, rtol=1e-12, atol=1e-12)
    # Monte Carlo: E_q[log q(z) - log p(z)] from 200 000 draws, within 5 standard errors
    z = q.sample((200_000,))
    terms = (q.log_prob(z) - p.log_prob(z)).flatten(2).sum(2)
    est, se = terms.mean(0), terms.std(0) / math.sqrt(terms.shape[0])
    assert torch.all((est - exact).abs() < 5 * se), (est, exact, se)


def test_gaussian_kl_is_zero_only_at_the_prior_and_checks_shapes():
    z = torch.zeros(2, 3)
    assert torch.equal(gaussian_kl(z, z), torch.zeros(2))
    assert torch.all(gaussian_kl(z + 0.1, z) > 0) and torch.all(gaussian_kl(z, z + 0.1) > 0)
    with pytest.raises(ValueError, match="logvar"):
        gaussian_kl(z, torch.zeros(2, 4))


def test_reparameterize_draws_from_the_posterior_and_passes_gradients():
    g = gen()
    mu = torch.tensor([1.5, -2.0], requires_grad=True)
    logvar = torch.tensor([math.log(0.25), math.log(4.0)], requires_grad=True)
    z = reparameterize(mu.expand(100_000, 2), logvar.expand(100_000, 2), generator=g)
    torch.testing.assert_close(z.mean(0), mu.detach(), atol=0.03, rtol=0)
    torch.testing.assert_close(z.var(0), torch.tensor([0.25, 4.0]), rtol=0.03, atol=0)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.full((2,), 100_000.0))
    assert logvar.grad.abs().min() > 0


def test_negative_elbo_is_the_gaussian_log_likelihood_plus_the_kl():
    g = gen()
    x, x_hat = torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64), \
        torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64)
    mu, logvar = torch.randn(4, 2, 2, 2, generator=g, dtype=torch.float64), \
        torch.randn(4, 2, 2, 2, generator=g, dtype=torch.float64)
    out = negative_elbo(x, x_hat, mu, logvar, sigma_x=0.3)
    nll = -torch.distributions.Normal(x_hat, 0.3).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(out["distortion"], nll)
    torch.testing.assert_close(out["nelbo"], nll + gaussian_kl(mu, logvar))
    with pytest.raises(ValueError, match="sigma_x"):
        negative_elbo(x, x_hat, mu, logvar, sigma_x=0.0)


def test_psnr_of_a_known_error_and_of_identical_images():
    x = torch.zeros(2, 3, 4, 4)
    torch.testing.assert_close(psnr(x, x + 0.1), torch.full((2,), 10 * math.log10(4 / 0.01)))
    assert torch.isinf(psnr(x, x)).all()
    with pytest.raises(ValueError, match="peak_to_peak"):
        psnr(x, x, peak_to_peak=-1)


def test_latent_scale_factor_gives_unit_variance():
    g = gen()
    z = 0.2 * torch.randn(5000, 4, generator=g) + 0.3
    s = latent_scale_factor(z)
    assert abs(float((z * s).std()) - 1.0) < 1e-6
    with pytest.raises(ValueError, match="vary"):
        latent_scale_factor(torch.ones(10))


def test_the_autoencoder_maps_32x32_images_to_8x8_latents_and_back():
    g = gen()
    ae = AutoencoderKL(**SMALL)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    mu, logvar = ae.encode(x)
    assert mu.shape == logvar.shape == (2, 4, 8, 8) and ae.downsampling == 4
    x_hat, mu2, _ = ae(x, sample=False)
    assert x_hat.shape == x.shape and torch.equal(mu, mu2)
    with pytest.raises(ValueError, match="divisible by 4"):
        ae.encode(torch.zeros(1, 3, 30, 30))
    with pytest.raises(ValueError, match="num_groups"):
        AutoencoderKL(ch=6, num_groups=4)


def test_the_loader_returns_float_latents_and_their_mirror_images():
    a = torch.arange(8.0).reshape(8, 1, 1, 1).expand(8, 2, 2, 2).contiguous()
    loader = ImageLoader(a, 8, seed=3, mirrored=-a)
    x = loader.next_batch()
    # every row is either the latent itself or its recorded mirror image, and both occur
    vals = sorted(float(v) for v in x[:, 0, 0, 0])
    assert sorted(abs(v) for v in vals) == list(range(8)) and any(v < 0 for v in vals)
    with pytest.raises(ValueError, match="mirrored"):
        ImageLoader(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), 2, seed=0, mirrored=torch.zeros(4, 1, 2, 2))


@pytest.fixture(scope="module")
def tiny_images():
    g = torch.Generator().manual_seed(0)
    colours = torch.randint(0, 256, (64, 3, 1, 1), generator=g, dtype=torch.uint8)
    return colours.expand(64, 3, 32, 32).contiguous()


def test_training_lowers_the_loss_resumes_exactly_and_never_overwrites(tmp_path, tiny_images):
    kw = dict(steps=6, batch_size=16, model_kwargs=SMALL, progress=False, log_every=1, lr=2e-3, bf16=False)
    whole = train_autoencoder(tmp_path / "a", tiny_images, **kw)
    train_autoencoder(tmp_path / "b", tiny_images, **dict(kw, steps=3))
    parts = train_autoencoder(tmp_path / "b", tiny_images, **kw, resume=True)
    for (k, v), w in zip(whole.state_dict().items(), parts.state_dict().values()):
        assert torch.equal(v, w), k
    rows = [__import__("json").loads(s) for s in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert whole.config["lineage"]["images"] == 6 * 16
    with pytest.raises(FileExistsError, match="resume=True"):
        train_autoencoder(tmp_path / "a", tiny_images, **kw)
    with pytest.raises(ValueError, match=r"sigma_x=0.2 \(the run has 0.1\)"):   # not silently another objective
        train_autoencoder(tmp_path / "a", tiny_images, **dict(kw, steps=8, sigma_x=0.2), resume=True)


def test_a_latent_model_loads_with_its_autoencoder_and_samples_images(tmp_path, tiny_images):
    ae_run = tmp_path / "ae"
    train_autoencoder(ae_run, tiny_images, steps=2, batch_size=16, model_kwargs=SMALL, progress=False, bf16=False)
    export_weights(ae_run, tmp_path / "tiny-ae.safetensors", ema=False)
    ae = load_model(tmp_path / "tiny-ae.safetensors")
    assert isinstance(ae, AutoencoderKL) and not hasattr(ae, "schedule")
    with pytest.raises(ValueError, match="no noise schedule"):
        sample_images(ae, 1, progress=False)
    mu, mirrored = encode_dataset(ae, tiny_images[:8], batch_size=3, progress=False)
    torch.testing.assert_close(mirrored, ae.encode(tiny_images[:8].float().div(127.5).sub(1).flip(-1))[0])
    s = latent_scale_factor(mu)
    loader = latent_loader(mu, mirrored, s, 4, seed=0)
    assert loader.next_batch().shape == (4, 4, 8, 8)

    # a latent U-Net run as diffnotes.train writes it, exported with the autoencoder's name and scale
    from diffnotes.checkpoints import save_checkpoint
    from diffnotes.recipe import EMA

    unet = UNet(in_channels=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), num_groups=4,
                image_size=8)
    run = tmp_path / "ldm"
    save_checkpoint(run, model=unet, ema=EMA(unet, 0.9), schedule=make_schedule("linear", 1000), step=1)
    export_latent_diffusion(run, tmp_path / "tiny-ldm.safetensors", autoencoder="tiny-ae", scale_factor=s)
    ldm = load_model(tmp_path / "tiny-ldm.safetensors", bf16=None)
    assert isinstance(ldm, LatentDiffusion) and ldm.scale_factor == pytest.approx(s)
    z = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(ldm.decode_latents(z), ae.decode(z / s))
    images = sample_images(ldm, 3, steps=2, progress=False, batch_size=2)
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 32, 32)
    with pytest.raises(FileNotFoundError, match="autoencoder 'missing'"):
        export_latent_diffusion(run, tmp_path / "bad.safetensors", autoencoder="missing", scale_factor=s)
        load_model(tmp_path / "bad.safetensors")
