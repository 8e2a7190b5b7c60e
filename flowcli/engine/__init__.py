"""The flow engine: pure PyTorch, tensors in and out, no pandas."""

from .autoregressive import MaskedAffineAutoregressive
from .base import Compose, Inverse, Transform
from .coupling import AffineCoupling, alternating_mask
from .distributions import StandardNormal
from .elementwise import ContextStandardize, ElementwiseAffine
from .flow import KINDS, Flow, build, maf, realnvp
from .nn import MADE, MLP, MaskedLinear

__all__ = [
    "KINDS",
    "MADE",
    "MLP",
    "AffineCoupling",
    "Compose",
    "ContextStandardize",
    "ElementwiseAffine",
    "Flow",
    "Inverse",
    "MaskedAffineAutoregressive",
    "MaskedLinear",
    "StandardNormal",
    "Transform",
    "alternating_mask",
    "build",
    "maf",
    "realnvp",
]
