"""The uint8 image bank: batches in [-1, 1], deterministic epoch order, random flips."""

import torch

from animegan.config import DatasetConfig
from animegan.data import ImageBank, build_image_bank


def _bank(n=40, size=8, flip=True):
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
    return ImageBank(images, flip=flip)


def test_batches_are_float_in_range_and_drop_the_partial_batch():
    bank = _bank(n=40)
    assert bank.batches_per_epoch(16) == 2
    x = bank.batch(torch.arange(16), torch.Generator().manual_seed(0))
    assert x.shape == (16, 3, 8, 8) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert x.min() < -0.9 and x.max() > 0.9  # the full range is used


def test_scaling_matches_uint8_values_without_flip():
    bank = _bank(flip=False)
    x = bank.batch(torch.tensor([3]), torch.Generator())
    assert torch.allclose(x[0], bank.images[3].float() / 127.5 - 1, atol=1e-6)


def test_epoch_order_depends_on_seed_and_epoch_only():
    bank = _bank()
    assert torch.equal(bank.epoch_order(1, 5), bank.epoch_order(1, 5))
    assert not torch.equal(bank.epoch_order(1, 5), bank.epoch_order(1, 6))
    assert sorted(bank.epoch_order(2, 0).tolist()) == list(range(len(bank)))


def test_flip_mirrors_about_half_the_images_and_follows_the_generator():
    bank = _bank(n=400)
    idx = torch.arange(400)
    plain = ImageBank(bank.images, flip=False).batch(idx, torch.Generator())
    flipped = bank.batch(idx, torch.Generator().manual_seed(1))
    mirrored = (flipped == plain.flip(3)).flatten(1).all(1) & ~(flipped == plain).flatten(1).all(1)
    assert 150 < int(mirrored.sum()) < 250
    unchanged = (flipped == plain).flatten(1).all(1)
    assert bool((mirrored | unchanged).all())  # each image is either as-is or mirrored
    assert torch.equal(flipped, bank.batch(idx, torch.Generator().manual_seed(1)))


def test_synthetic_dataset_builds_a_bank_at_the_model_size():
    bank = build_image_bank(DatasetConfig(kind="synthetic", num_images=20), image_size=32, seed=3)
    assert len(bank) == 20 and bank.images.shape == (20, 3, 32, 32) and bank.images.dtype == torch.uint8
    x = bank.batch(torch.arange(8), torch.Generator().manual_seed(0))
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.2
