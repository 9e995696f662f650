"""Generator and discriminator shapes, depth and initialisation at every supported size."""

import pytest
import torch

from animegan.models import Discriminator, Generator, count_parameters, init_dcgan_weights


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("nz", [100, 128])
def test_generator_and_discriminator_shapes(size, nz):
    g, d = Generator(nz=nz, ngf=8, image_size=size), Discriminator(ndf=8, image_size=size)
    z = torch.randn(3, nz)
    images = g(z)
    assert images.shape == (3, 3, size, size)
    assert images.min() >= -1 and images.max() <= 1  # Tanh output
    g.eval()
    assert torch.allclose(g(z[:, :, None, None]), g(z))  # [N, nz] and [N, nz, 1, 1] latents agree
    logits = d(images)
    assert logits.shape == (3,)


def test_depth_follows_image_size():
    def convs(m):
        return sum(isinstance(x, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for x in m.modules())

    assert [convs(Generator(ngf=8, image_size=s)) for s in (32, 64, 128)] == [4, 5, 6]
    assert [convs(Discriminator(ndf=8, image_size=s)) for s in (32, 64, 128)] == [4, 5, 6]


def test_paper_sizes_at_64px():
    # The classic DCGAN-64 with ngf=ndf=64, nz=100: 3.58M generator and 2.77M discriminator parameters.
    assert count_parameters(Generator(100, 64, 64)) == 3_576_704
    assert count_parameters(Discriminator(64, 64)) == 2_765_568


def test_bad_size_is_rejected():
    with pytest.raises(ValueError):
        Generator(image_size=48)
    with pytest.raises(ValueError):
        Discriminator(image_size=8)


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    g = Generator(100, 32, 64)
    init_dcgan_weights(g)
    conv = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    bn = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(conv.mean()) < 1e-3 and abs(conv.std() - 0.02) < 1e-3
    assert abs(bn.mean() - 1) < 0.01 and abs(bn.std() - 0.02) < 0.01


def test_discriminator_dropout_and_slope_are_used():
    d = Discriminator(ndf=8, image_size=32, dropout=0.3, leaky_slope=0.1)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in d.modules())
    assert all(m.negative_slope == 0.1 for m in d.modules() if isinstance(m, torch.nn.LeakyReLU))


@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("options", [{}, {"minibatch_std": True}, {"d_batchnorm": False, "g_batchnorm": False},
                                     {"d_spectral_norm": True, "g_spectral_norm": True}])
def test_the_size_check_counts_what_the_networks_hold(size, options):
    """Validation refuses a network above MAX_PARAMETERS from a count made without torch
    (a refused config never imports it); the count must stay that of the real networks,
    built here on the meta device, as the architecture changes."""
    from animegan.config import ModelConfig
    from animegan.config_checks import estimated_parameters
    from animegan.models import build_pair

    for ngf, ndf, nz in ((8, 8, 16), (64, 64, 100), (68, 24, 128)):
        model = ModelConfig(image_size=size, ngf=ngf, ndf=ndf, nz=nz, **options)
        with torch.device("meta"):
            real = [count_parameters(net) for net in build_pair(model)]
        for estimate, count in zip(estimated_parameters(model), real):
            assert abs(estimate - count) <= 0.02 * count, (model, estimate, count)
