"""The context mixture base: a Gaussian mixture whose weights and means move with a context."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from flowcli.engine import ContextMixture, GaussianMixture, build, maf, nsf
from flowcli.engine.distributions import fit_context_mixture


def moved(features: int, components: int, context_features: int,
          seed: int = 0, squared: int | None = None) -> ContextMixture:
    """A context mixture with every part away from its start, in float64."""
    g = torch.Generator().manual_seed(seed)
    mixture = ContextMixture(features, components, context_features, squared).double()
    with torch.no_grad():
        for p in mixture.parameters():
            p.copy_(0.7 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return mixture


def reference(mixture: ContextMixture, context: torch.Tensor) -> MixtureSameFamily:
    """The same density, row by row, from torch.distributions."""
    log_w, means, scale = mixture._parts(context)
    return MixtureSameFamily(Categorical(logits=log_w),
                             MultivariateNormal(means, scale_tril=scale.expand(
                                 context.shape[0], *scale.shape)))


@pytest.mark.parametrize("squared", [None, 1, 0])
def test_log_prob_is_the_mixture_of_its_context(squared) -> None:
    mixture = moved(3, 4, 2, squared=squared)
    g = torch.Generator().manual_seed(1)
    z = 2 * torch.randn(300, 3, generator=g, dtype=torch.float64)
    context = torch.randn(300, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        expected = reference(mixture, context).log_prob(z)
        assert torch.allclose(mixture.log_prob(z, context), expected, atol=1e-10)
        # the weights and the means do depend on the context
        assert not torch.allclose(mixture.log_prob(z, context), mixture.log_prob(z, -context))


@pytest.mark.parametrize("context", [[0.0, 0.0], [1.0, -0.5], [-1.5, 2.0]])
def test_density_integrates_to_one_for_every_context(context) -> None:
    mixture = moved(2, 3, 2, seed=3)
    lo, hi, n = -14.0, 14.0, 561
    axis = torch.linspace(lo, hi, n, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    given = torch.tensor(context, dtype=torch.float64).expand(grid.shape[0], 2)
    with torch.no_grad():
        total = float(mixture.log_prob(grid, given).exp().sum()) * ((hi - lo) / (n - 1)) ** 2
    assert abs(total - 1.0) < 1e-3, total


def test_samples_follow_the_density_of_their_context() -> None:
    mixture = moved(2, 3, 1, seed=4)
    g = torch.Generator().manual_seed(0)
    for value in (-1.0, 0.5):
        context = torch.full((100_000, 1), value, dtype=torch.float64)
        with torch.no_grad():
            draws = mixture.sample(100_000, generator=g, context=context)
            truth = reference(mixture, context[:1])
        assert torch.allclose(draws.mean(dim=0), truth.mean[0], atol=0.05)
        assert torch.allclose(draws.var(dim=0), truth.variance[0], rtol=0.05, atol=0.05)


def test_it_starts_as_the_mixture_it_takes_whatever_the_context() -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.randn(3, 2, 2, generator=g, dtype=torch.float64)
    fixed = GaussianMixture(2, 3).double().set(
        torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64),
        torch.randn(3, 2, generator=g, dtype=torch.float64),
        a @ a.transpose(1, 2) + 0.2 * torch.eye(2, dtype=torch.float64))
    mixture = moved(2, 3, 4).take(fixed)
    z = torch.randn(50, 2, generator=g, dtype=torch.float64)
    context = torch.randn(50, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(mixture.log_prob(z, context), fixed.log_prob(z), atol=1e-10)


def test_fitting_learns_how_the_mixture_moves_with_the_context() -> None:
    """Rows at +3 or -3 by a binary context: the fit finds each side's mean."""
    g = torch.Generator().manual_seed(0)
    context = torch.randint(0, 2, (4000, 1), generator=g).double()
    z = (6 * context - 3) + 0.5 * torch.randn(4000, 1, generator=g, dtype=torch.float64)
    mixture = ContextMixture(1, 2, 1).double()
    fixed = GaussianMixture(1, 2).double().set(
        torch.tensor([0.5, 0.5], dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64),
        torch.full((2, 1, 1), 9.0, dtype=torch.float64))
    mixture.take(fixed)
    with torch.no_grad():
        before = float(mixture.log_prob(z, context).mean())
    fit_context_mixture(mixture, z, context, torch.Generator().manual_seed(0), steps=400,
                        lr=0.05)
    with torch.no_grad():
        after = float(mixture.log_prob(z, context).mean())
        ones = torch.ones(2000, 1, dtype=torch.float64)
        high = mixture.sample(2000, torch.Generator().manual_seed(1), context=ones)
    assert after > before + 1.0, (before, after)
    assert abs(float(high.mean()) - 3.0) < 0.2


@pytest.mark.parametrize("builder", [maf, nsf])
def test_a_conditional_flow_on_a_context_mixture_rebuilds_and_integrates(builder) -> None:
    torch.manual_seed(0)
    flow = builder(2, layers=2, hidden=8, context_features=2, mixture=3)
    fixed = GaussianMixture(2, 3)
    flow.set_mixture(fixed, condition=2)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert isinstance(flow.base, ContextMixture) and flow.config["base_context"]
    twin = build(flow.config)
    twin.load_state_dict(flow.state_dict())
    x, context = torch.randn(64, 2) * 2, torch.randn(64, 2)
    with torch.no_grad():
        assert torch.equal(flow.log_prob(x, context), twin.log_prob(x, context))
        lo, hi, n = -16.0, 16.0, 481
        axis = torch.linspace(lo, hi, n, dtype=torch.float64)
        grid = torch.cartesian_prod(axis, axis)
        given = torch.tensor([[0.7, -1.2]], dtype=torch.float64).expand(grid.shape[0], 2)
        total = float(flow.double().log_prob(grid, given).exp().sum()) * (
            (hi - lo) / (n - 1)) ** 2
    assert abs(total - 1.0) < 0.01, total


def test_a_context_mixture_needs_a_context() -> None:
    with pytest.raises(ValueError, match="context"):
        maf(2, layers=1, hidden=4, mixture=2).set_mixture(GaussianMixture(2, 2), condition=1)
    with pytest.raises(ValueError, match="context"):
        ContextMixture(2, 2, 1).log_prob(torch.zeros(3, 2))
