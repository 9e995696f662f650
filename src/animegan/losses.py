"""GAN losses on discriminator outputs, and the gradient penalties. Each returns scalar
tensors; nothing here syncs the host.

A loss object has `discriminator(real_logits, fake_logits) -> (real_loss, fake_loss)`,
`generator(fake_logits, real_logits) -> loss`, `gp_weight` (> 0 only for wgan_gp: the loop
then adds `gradient_penalty`) and `relativistic` (True when G's loss compares with D's
scores of real images: the loop then passes them, else None). The R1 and R2 penalties
work with every loss and are configured separately.
"""

from typing import Optional

import torch
import torch.nn.functional as F

from animegan.distributed import Shard
from animegan.choices import LOSSES
from animegan.errors import AnimeganError


class BCELoss:
    """The original GAN loss, non-saturating for G, computed with BCE on logits
    (binary_cross_entropy_with_logits is stable and runs in fp32 under autocast).

    real_label < 1 is one-sided label smoothing (Salimans et al. 2016): D's target for real
    images is e.g. 0.9, which keeps it from growing overconfident; fakes keep target 0.
    """

    gp_weight = 0.0
    relativistic = False

    def __init__(self, real_label: float = 1.0, **_):
        self.real_label = real_label

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor):
        real_target = torch.full_like(real_logits, self.real_label)
        real_loss = F.binary_cross_entropy_with_logits(real_logits, real_target)
        fake_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return real_loss, fake_loss

    def generator(self, fake_logits: torch.Tensor, real_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        # Non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z))).
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class HingeLoss:
    """Hinge loss (Lim & Ye 2017; SNGAN, SAGAN, BigGAN): D minimises
    E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G minimises -E[D(G(z))]."""

    gp_weight = 0.0
    relativistic = False

    def __init__(self, **_):
        pass

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor):
        return F.relu(1.0 - real_logits.float()).mean(), F.relu(1.0 + fake_logits.float()).mean()

    def generator(self, fake_logits: torch.Tensor, real_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        return -fake_logits.float().mean()


class WGANGPLoss:
    """Wasserstein loss with gradient penalty (Gulrajani et al. 2017): the critic minimises
    E[D(G(z))] - E[D(x)] + lambda * E[(|grad D(x_hat)| - 1)^2] on random interpolates x_hat;
    G minimises -E[D(G(z))]. The paper trains the critic n_critic=5 times per G step
    (train.d_steps=5), with Adam betas (0, 0.9) and no BatchNorm in the critic."""

    relativistic = False

    def __init__(self, gp_weight: float = 10.0, **_):
        self.gp_weight = gp_weight

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor):
        return -real_logits.float().mean(), fake_logits.float().mean()

    def generator(self, fake_logits: torch.Tensor, real_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        return -fake_logits.float().mean()


class LSGANLoss:
    """Least-squares GAN (Mao et al. 2017), a-b-c = 0-1-1: D minimises
    0.5 E[(D(x) - 1)^2] + 0.5 E[D(G(z))^2], G minimises 0.5 E[(D(G(z)) - 1)^2].
    real_label < 1 moves D's target for real images (label smoothing)."""

    gp_weight = 0.0
    relativistic = False

    def __init__(self, real_label: float = 1.0, **_):
        self.real_label = real_label

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor):
        return 0.5 * (real_logits.float() - self.real_label).pow(2).mean(), 0.5 * fake_logits.float().pow(2).mean()

    def generator(self, fake_logits: torch.Tensor, real_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        return 0.5 * (fake_logits.float() - 1.0).pow(2).mean()


class RpGANLoss:
    """Relativistic pairing loss (Jolicoeur-Martineau 2019, "The relativistic discriminator";
    R3GAN: Huang et al. 2025, "The GAN is dead; long live the GAN! A Modern GAN Baseline").
    Real image i is paired with fake image i, and each side is judged by the difference
    of their scores: D minimises E[softplus(D(G(z_i)) - D(x_i))], G minimises
    E[softplus(D(x_i) - D(G(z_i)))], as the paper's reference code (R3GAN/Trainer.py)
    computes them. The paper pairs it with zero-centred penalties on both sides, R1 on real
    and R2 on fake images (loss.r1_gamma, loss.r2_gamma; configs/loss/rpgan.yaml).

    The D loss does not split into a real and a fake part: all of it is returned as the
    first term, and the second is 0."""

    gp_weight = 0.0
    relativistic = True

    def __init__(self, **_):
        pass

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor):
        loss = F.softplus(fake_logits.float() - real_logits.float()).mean()
        return loss, torch.zeros_like(loss)

    def generator(self, fake_logits: torch.Tensor, real_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        if real_logits is None:
            raise ValueError("the relativistic pairing loss needs D's scores of real images for G's loss")
        return F.softplus(real_logits.float() - fake_logits.float()).mean()


def build_loss(name: str, real_label: float = 1.0, gp_weight: float = 10.0):
    """The loss registered as `name` in animegan.choices.LOSSES."""
    if name not in LOSSES:
        raise AnimeganError(f"unknown loss '{name}'; available: {', '.join(LOSSES)}")
    return LOSSES[name].load()(real_label=real_label, gp_weight=gp_weight)


def input_gradient_sq_norm(outputs: torch.Tensor, inputs: torch.Tensor,
                           grad_scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """|d outputs_i / d inputs_i|^2 per sample, kept in the graph (create_graph) so that
    a penalty on it trains D. Each output depends only on its own input sample (D in eval
    mode, or BatchNorm aside), so the gradient of the sum gives every per-sample gradient.

    Under fp16 the backward pass runs on outputs multiplied by `grad_scale` (the loss
    scaler's factor), so that small gradients do not underflow, and the gradient is divided
    by it again (as torch.amp's gradient-penalty recipe does)."""
    total = outputs.float().sum()
    if grad_scale is not None:
        total = total * grad_scale
    (grad,) = torch.autograd.grad(total, inputs, create_graph=True)
    grad = grad.float()
    if grad_scale is None:
        return grad.pow(2).flatten(1).sum(1)
    sq_norm = (grad / grad_scale).pow(2).flatten(1).sum(1)
    # The scaled gradient overflows now and then (at the start, the scale is 65536): the
    # scaler's way is to skip that step and lower the scale. The sample's penalty counts 0
    # in the loss (an inf loss would stop the run as diverged); its NaN gradient still
    # reaches D's weights, so the scaler skips the step as for any overflow.
    return torch.where(torch.isfinite(sq_norm), sq_norm, torch.zeros_like(sq_norm))


def gradient_penalty(discriminator, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator,
                     grad_scale: Optional[torch.Tensor] = None, shard: Shard = Shard()) -> torch.Tensor:
    """WGAN-GP: E[(|grad D(x_hat)| - 1)^2] at x_hat = a*real + (1-a)*fake, a ~ U(0, 1) per
    sample drawn from `rng` (the loop's checkpointed generator; for the global batch, of
    which this process keeps its `shard`). Not yet multiplied by lambda.

    The interpolates are made in fp32 whatever the precision: under autocast the fakes come
    out of G in bf16/fp16 while the real batch is fp32, and D's convolutions cast x_hat
    to the autocast dtype themselves."""
    real, fake = real.detach().float(), fake.detach().float()
    alpha = shard.take(torch.rand(real.shape[0] * shard.count, 1, 1, 1, device=real.device, generator=rng))
    x_hat = torch.lerp(fake, real, alpha).requires_grad_(True)
    norm = (input_gradient_sq_norm(discriminator(x_hat), x_hat, grad_scale) + 1e-12).sqrt()
    return (norm - 1.0).pow(2).mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor,
               grad_scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E[|grad D(x)|^2] on real images, reusing the forward
    that produced `real_logits` (the inputs must require grad). Not yet multiplied by gamma/2.
    Given fake images and their logits it is R2, the same penalty on G's side (R3GAN)."""
    return input_gradient_sq_norm(real_logits, real_inputs, grad_scale).mean()
