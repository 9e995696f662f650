"""GAN losses on discriminator logits. Each returns scalar tensors; nothing syncs the host."""

import torch
import torch.nn.functional as F

from animegan.errors import AnimeganError


class BCELoss:
    """The original GAN loss, non-saturating for G, computed with BCE on logits
    (binary_cross_entropy_with_logits is stable and runs in fp32 under autocast)."""

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor):
        real_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        fake_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return real_loss, fake_loss

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        # Non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z))).
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


LOSSES = {"bce": BCELoss}


def build_loss(name: str):
    if name not in LOSSES:
        raise AnimeganError(f"unknown loss '{name}'; available: {', '.join(LOSSES)}")
    return LOSSES[name]()
