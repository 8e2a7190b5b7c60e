"""Base distributions."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["StandardNormal"]


class StandardNormal(nn.Module):
    """The standard normal on ``features`` dimensions; nothing in its ``state_dict``."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features
        self.register_buffer(
            "_log_z", torch.tensor(0.5 * features * math.log(2 * math.pi)), persistent=False
        )

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density of each row of ``z`` ``(B, D)``; shape ``(B,)``."""
        return -0.5 * z.pow(2).sum(dim=1) - self._log_z.to(z.dtype)

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """``n`` draws of shape ``(n, D)``."""
        device = device if device is not None else self._log_z.device
        return torch.randn(
            n, self.features, generator=generator, device=device,
            dtype=dtype or torch.get_default_dtype(),
        )
