"""The registries of animegan.choices are what validation offers and what the builders build:
a new loss (optimizer, augmentation) is one entry there plus its implementation."""

from __future__ import annotations

import pytest
import torch

from animegan import choices
from animegan.config import OptimizerConfig
from animegan.config_checks import validate
from animegan.errors import AnimeganError
from animegan.losses import build_loss
from animegan.models import Discriminator, Generator
from animegan.optimizers import build_optimizers
from conftest import tiny_conf


@pytest.mark.parametrize("registry", [choices.LOSSES, choices.OPTIMIZERS, choices.AUGMENTATIONS])
def test_every_entry_names_an_implementation_that_imports(registry):
    for name, choice in registry.items():
        assert callable(choice.load()), name


def test_validation_offers_exactly_the_registries():
    conf = tiny_conf()
    for key, registry in (("loss.name", choices.LOSSES), ("optimizer.name", choices.OPTIMIZERS),
                          ("train.precision", choices.PRECISIONS)):
        with pytest.raises(AnimeganError) as refused:
            tiny_conf(f"{key}=nope")
        assert f"allowed: {', '.join(registry)}" in str(refused.value)
    with pytest.raises(AnimeganError, match=f"transforms from {', '.join(choices.AUGMENTATIONS)}"):
        tiny_conf("train.diffaugment=[nope]")
    assert conf.loss.name in choices.LOSSES and conf.optimizer.name in choices.OPTIMIZERS


def test_a_new_loss_is_one_registry_entry(monkeypatch):
    """Registered under a new name (here: BCE again), it validates and trains."""
    monkeypatch.setitem(choices.LOSSES, "bce_again", choices.Choice("animegan.losses:BCELoss"))
    conf = validate({**_saved(), "loss": {**_saved()["loss"], "name": "bce_again"}})
    loss = build_loss(conf.loss.name, real_label=conf.loss.real_label)
    logits = torch.tensor([2.0, -1.0])
    assert torch.allclose(loss.generator(logits), build_loss("bce").generator(logits))


def test_an_option_only_its_choices_read_is_refused_elsewhere():
    for name, choice in choices.OPTIMIZERS.items():
        others = [o for o in choices.OPTIMIZERS if o != name]
        for key in choice.options:
            if any(key in choices.OPTIMIZERS[o].options for o in others if o != name):
                continue
            with pytest.raises(AnimeganError, match=f"'optimizer.{key}'.* applies to optimizer={name}"):
                tiny_conf(f"optimizer={others[0]}", f"optimizer.{key}={'[0.1,0.2]' if key == 'betas' else 0.5}")
    with pytest.raises(AnimeganError, match="'loss.gp_weight'.* applies to loss=wgan_gp only"):
        tiny_conf("loss.gp_weight=5")


@pytest.mark.parametrize("name", sorted(choices.OPTIMIZERS))
def test_each_registered_optimizer_is_built_for_both_networks(name):
    g, d = Generator(ngf=4, image_size=16), Discriminator(ndf=4, image_size=16)
    opt_g, opt_d = build_optimizers(OptimizerConfig(name=name, lr=1e-3, betas=[0.5, 0.999]), g, d)
    expected = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}[name]
    assert type(opt_g) is expected and type(opt_d) is expected


def _saved() -> dict:
    from animegan.config import to_dict

    return to_dict(tiny_conf())
