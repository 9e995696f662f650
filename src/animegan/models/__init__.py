"""DCGAN generator and discriminator, sized from the model config."""

from typing import Any, Mapping, Union

from torch import nn

from animegan.models.discriminator import Discriminator, MinibatchStd
from animegan.models.generator import Generator
from animegan.models.init import init_dcgan_weights

__all__ = ["Generator", "Discriminator", "MinibatchStd", "init_dcgan_weights", "count_parameters",
           "build_generator", "build_discriminator", "build_pair", "apply_spectral_norm"]


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _get(conf: Union[Mapping[str, Any], Any], key: str, default: Any) -> Any:
    """A model-config value from a ModelConfig or a plain dict (older checkpoints lack new keys)."""
    return conf.get(key, default) if isinstance(conf, Mapping) else getattr(conf, key, default)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every (transposed) convolution, with
    torch's parametrization (one power iteration per training forward; u, v are buffers,
    so checkpoints hold them and a resumed run continues exactly)."""
    from torch.nn.utils.parametrizations import spectral_norm

    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            spectral_norm(m)
    return module


def _generator(conf) -> Generator:
    return Generator(int(_get(conf, "nz", 100)), int(_get(conf, "ngf", 64)), int(_get(conf, "image_size", 64)),
                     dropout=float(_get(conf, "g_dropout", 0.0)), leaky_slope=float(_get(conf, "g_leaky_slope", 0.0)),
                     batchnorm=bool(_get(conf, "g_batchnorm", True)))


def _discriminator(conf) -> Discriminator:
    return Discriminator(int(_get(conf, "ndf", 64)), int(_get(conf, "image_size", 64)),
                         dropout=float(_get(conf, "d_dropout", 0.0)), leaky_slope=float(_get(conf, "leaky_slope", 0.2)),
                         batchnorm=bool(_get(conf, "d_batchnorm", True)),
                         minibatch_std=bool(_get(conf, "minibatch_std", False)))


def build_pair(conf):
    """(generator, discriminator) for a model config, drawn from the global RNG in the
    original order (construct G, construct D, DCGAN init of G, then of D), so a seed gives
    the same weights as before these options existed; spectral norm wraps the convs last."""
    g, d = _generator(conf), _discriminator(conf)
    init_dcgan_weights(g)
    init_dcgan_weights(d)
    if _get(conf, "g_spectral_norm", False):
        apply_spectral_norm(g)
    if _get(conf, "d_spectral_norm", False):
        apply_spectral_norm(d)
    return g, d


def build_generator(conf) -> Generator:
    """The generator a model config describes (DCGAN init applied before spectral norm)."""
    g = _generator(conf)
    init_dcgan_weights(g)
    return apply_spectral_norm(g) if _get(conf, "g_spectral_norm", False) else g


def build_discriminator(conf) -> Discriminator:
    d = _discriminator(conf)
    init_dcgan_weights(d)
    return apply_spectral_norm(d) if _get(conf, "d_spectral_norm", False) else d
