"""Whether a checkpoint's weights fit the networks its config describes, found out
without building them (the networks are made on PyTorch's "meta" device: shapes only, no
memory), so a mismatch is one line before any work starts."""

from __future__ import annotations

from typing import Any, Dict

from animegan.errors import AnimeganError


def check_weights_fit(model_conf, state: Dict[str, Any]) -> None:
    """Raise a one-line AnimeganError unless state['generator'] and state['discriminator']
    have exactly the tensors (names and shapes) of the networks `model_conf` describes."""
    import torch

    from animegan.models import build_pair

    with torch.device("meta"):
        generator, discriminator = build_pair(model_conf)
    for name, net in (("generator", generator), ("discriminator", discriminator)):
        expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        weights = state.get(name, {})
        found = {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)}
        if found != expected:
            wrong = sorted(set(expected) ^ set(found)) or [k for k in expected if expected[k] != found[k]]
            raise AnimeganError(f"its {name} weights do not fit the model config (first difference: {wrong[0]}); "
                                "use the model config it was trained with")
