"""An autoregressive model of discrete variables: ``P(c_1) P(c_2 | c_1) ... P(c_J | c_<J)``.

Each conditional is a softmax over one variable's categories, computed by a small MLP from the
one-hot codes of the variables before it (and from a context, when the model is conditional), so
log-probabilities are exact and sampling is ancestral.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .nn import MLP

__all__ = ["CategoricalChain", "one_hot"]


def one_hot(indices: Tensor, cardinalities: list[int]) -> Tensor:
    """``(B, J)`` category indices (any float or int dtype) to ``(B, sum K_j)`` one-hot codes."""
    parts = [F.one_hot(indices[:, j].long(), k) for j, k in enumerate(cardinalities)]
    if not parts:
        return indices.new_zeros(indices.shape[0], 0, dtype=torch.get_default_dtype())
    return torch.cat(parts, dim=1).to(torch.get_default_dtype())


class CategoricalChain(nn.Module):
    """The joint distribution of ``J`` categorical variables with ``cardinalities`` categories.

    Arguments:
        cardinalities: the number of categories ``K_j`` of each variable, each at least 1.
        hidden: hidden width of each conditional's MLP.
        context_features: width of the context every conditional also sees (0: none).
    """

    def __init__(self, cardinalities: list[int], hidden: int = 64,
                 context_features: int = 0) -> None:
        super().__init__()
        if not cardinalities or min(cardinalities) < 1:
            raise ValueError(f"cardinalities must be positive, got {cardinalities}")
        self.cardinalities = [int(k) for k in cardinalities]
        self.context_features = int(context_features)
        self.first = nn.Parameter(torch.zeros(self.cardinalities[0]))
        # with a context, the first variable's logits are ``first`` plus a network of it
        self.nets = nn.ModuleList(
            MLP(sum(self.cardinalities[:j]) + self.context_features, k, hidden, 1)
            for j, k in enumerate(self.cardinalities) if j > 0 or self.context_features
        )
        self.offsets = [0]
        for k in self.cardinalities:
            self.offsets.append(self.offsets[-1] + k)

    @torch.no_grad()
    def init_from(self, indices: Tensor) -> CategoricalChain:
        """Start every conditional at the marginal frequencies of ``indices`` ``(B, J)``.

        The networks' outputs start at zero, so their output biases set the start; training
        then only has to learn the dependence between variables.
        """
        for j, k in enumerate(self.cardinalities):
            counts = torch.bincount(indices[:, j].long(), minlength=k).to(self.first.dtype)
            logits = torch.log((counts + 0.5) / (counts.sum() + 0.5 * k))
            if j == 0:
                self.first.copy_(logits)
            else:
                self._net(j)[-1].bias.copy_(logits)
        return self

    def _net(self, j: int) -> nn.Module:
        return self.nets[j if self.context_features else j - 1]

    @property
    def variables(self) -> int:
        return len(self.cardinalities)

    def _logits(self, j: int, codes: Tensor, context: Tensor | None) -> Tensor:
        if self.context_features:
            inputs = torch.cat([codes[:, : self.offsets[j]], context], dim=1)
            out = self._net(j)(inputs)
            return out + self.first if j == 0 else out
        if j == 0:
            return self.first.expand(codes.shape[0], -1)
        return self._net(j)(codes[:, : self.offsets[j]])

    def _check_context(self, rows: int, context: Tensor | None) -> None:
        if self.context_features and (context is None or context.shape != (
                rows, self.context_features)):
            raise ValueError(f"expected a context of shape ({rows}, {self.context_features})")
        if not self.context_features and context is not None and context.shape[1]:
            raise ValueError("this chain takes no context (context_features=0)")

    def log_prob(self, indices: Tensor, context: Tensor | None = None) -> Tensor:
        """``log P(c | context)`` of each row of ``(B, J)`` indices; shape ``(B,)``."""
        if indices.dim() != 2 or indices.shape[1] != self.variables:
            raise ValueError(f"expected indices of shape (B, {self.variables}), "
                             f"got {tuple(indices.shape)}")
        self._check_context(indices.shape[0], context)
        codes = one_hot(indices, self.cardinalities).to(self.first.dtype)
        total = codes.new_zeros(indices.shape[0])
        for j in range(self.variables):
            logp = torch.log_softmax(self._logits(j, codes, context), dim=1)
            total = total + logp.gather(1, indices[:, j : j + 1].long()).squeeze(1)
        return total

    def sample(self, n: int, generator: torch.Generator | None = None,
               context: Tensor | None = None) -> Tensor:
        """``n`` rows of category indices, shape ``(n, J)`` (float, like the data); with a
        context, one row per context row."""
        self._check_context(n, context)
        device = self.first.device
        codes = torch.zeros(n, self.offsets[-1], device=device, dtype=self.first.dtype)
        out = torch.zeros(n, self.variables, device=device, dtype=self.first.dtype)
        for j, k in enumerate(self.cardinalities):
            probs = torch.softmax(self._logits(j, codes, context), dim=1)
            if n:
                pick = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                out[:, j] = pick.to(out.dtype)
                codes[:, self.offsets[j] : self.offsets[j + 1]] = F.one_hot(pick, k).to(
                    codes.dtype)
        return out
