"""The flow engine: pure PyTorch, tensors in and out, no pandas."""

from .autoregressive import MaskedAffineAutoregressive
from .base import Compose, Inverse, Transform
from .coupling import AffineCoupling, alternating_mask
from .discrete import CategoricalChain
from .distributions import StandardNormal
from .elementwise import ContextStandardize, ElementwiseAffine
from .flow import KINDS, Flow, build, maf, realnvp
from .mixed import MixedDensity, build_mixed, rebuild_mixed
from .nn import MADE, MLP, MaskedLinear

__all__ = [
    "KINDS",
    "MADE",
    "MLP",
    "AffineCoupling",
    "CategoricalChain",
    "Compose",
    "ContextStandardize",
    "ElementwiseAffine",
    "Flow",
    "Inverse",
    "MaskedAffineAutoregressive",
    "MaskedLinear",
    "MixedDensity",
    "StandardNormal",
    "Transform",
    "alternating_mask",
    "build",
    "build_mixed",
    "maf",
    "realnvp",
    "rebuild_mixed",
]
