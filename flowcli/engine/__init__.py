"""The flow engine: pure PyTorch, tensors in and out, no pandas."""

from .autoregressive import MaskedAffineAutoregressive
from .base import Compose, Inverse, Transform
from .coupling import AffineCoupling, alternating_mask
from .discrete import CategoricalChain
from .distributions import (
    ContextMixture,
    GaussianMixture,
    StandardNormal,
    fit_mixture,
    select_mixture,
)
from .elementwise import ContextStandardize, ElementwiseAffine
from .flow import KINDS, Flow, build, maf, nsf, realnvp, unmix
from .linear import LULinear, Whiten
from .mixed import MixedDensity, build_mixed, rebuild_mixed
from .nn import MADE, MLP, MaskedLinear
from .spline import ElementwiseSpline, MaskedSplineAutoregressive, rational_quadratic
from .tails import Tails, fit_tails

__all__ = [
    "KINDS",
    "MADE",
    "MLP",
    "AffineCoupling",
    "CategoricalChain",
    "Compose",
    "ContextStandardize",
    "ElementwiseAffine",
    "ElementwiseSpline",
    "ContextMixture",
    "GaussianMixture",
    "LULinear",
    "Flow",
    "Inverse",
    "MaskedAffineAutoregressive",
    "MaskedLinear",
    "MaskedSplineAutoregressive",
    "MixedDensity",
    "StandardNormal",
    "Tails",
    "Transform",
    "Whiten",
    "alternating_mask",
    "build",
    "build_mixed",
    "fit_mixture",
    "fit_tails",
    "maf",
    "nsf",
    "rational_quadratic",
    "realnvp",
    "unmix",
    "rebuild_mixed",
    "select_mixture",
]
