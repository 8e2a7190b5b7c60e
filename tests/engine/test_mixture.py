"""The Gaussian-mixture base: its density, EM, the choice of size, and flows on top of it."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from flowcli.engine import GaussianMixture, build, fit_mixture, maf, nsf, realnvp, unmix
from flowcli.engine.distributions import select_mixture


def clusters(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` rows from three well-separated 3-D Gaussians of weights 0.5 / 0.3 / 0.2."""
    g = torch.Generator().manual_seed(seed)
    means = torch.tensor([[4.0, 0.0, 0.0], [-4.0, 2.0, 1.0], [0.0, -5.0, 3.0]])
    weights = torch.tensor([0.5, 0.3, 0.2])
    k = torch.multinomial(weights, n, replacement=True, generator=g)
    a = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, -0.5, 0.5]])
    x = means[k] + torch.randn(n, 3, generator=g) @ a.T * torch.tensor([1.0, 0.5, 0.3])[k, None]
    return x, means, weights


def random_mixture(features: int, components: int, seed: int = 0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(components, features, features, generator=g, dtype=torch.float64)
    cov = a @ a.transpose(1, 2) + 0.3 * torch.eye(features, dtype=torch.float64)
    weights = torch.rand(components, generator=g, dtype=torch.float64) + 0.1
    means = 3 * torch.randn(components, features, generator=g, dtype=torch.float64)
    return GaussianMixture(features, components).double().set(weights, means, cov)


def test_log_prob_matches_torch_distributions() -> None:
    mixture = random_mixture(4, 3)
    reference = MixtureSameFamily(
        Categorical(logits=mixture.log_weights),
        MultivariateNormal(mixture.means, scale_tril=mixture.scale_tril))
    x = 2 * torch.randn(500, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(mixture.log_prob(x), reference.log_prob(x), atol=1e-10)


def test_new_mixture_is_the_standard_normal() -> None:
    x = torch.randn(50, 3, dtype=torch.float64)
    mixture = GaussianMixture(3, 4).double()
    expected = -0.5 * x.pow(2).sum(dim=1) - 1.5 * math.log(2 * math.pi)
    assert torch.allclose(mixture.log_prob(x), expected, atol=1e-12)


def test_density_integrates_to_one_in_two_dimensions() -> None:
    mixture = random_mixture(2, 3, seed=4)
    lo, hi, n = -14.0, 14.0, 561
    axis = torch.linspace(lo, hi, n, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    total = float(mixture.log_prob(grid).exp().sum()) * ((hi - lo) / (n - 1)) ** 2
    assert abs(total - 1.0) < 1e-3, total


def test_samples_have_the_mixture_moments() -> None:
    mixture = random_mixture(3, 2, seed=2)
    draws = mixture.sample(200_000, generator=torch.Generator().manual_seed(0))
    w = mixture.log_weights.exp()
    mean = (w[:, None] * mixture.means).sum(dim=0)
    cov = sum(w[k] * (mixture.scale_tril[k] @ mixture.scale_tril[k].T
                      + torch.outer(mixture.means[k] - mean, mixture.means[k] - mean))
              for k in range(2))
    assert torch.allclose(draws.mean(dim=0), mean, atol=0.05)
    assert torch.allclose(torch.cov(draws.T), cov, rtol=0.03, atol=0.05)


def test_em_recovers_the_clusters() -> None:
    x, means, weights = clusters(6000)
    mixture = fit_mixture(x, 3, torch.Generator().manual_seed(0))
    # each cluster has its own component, at its mean and with its weight
    nearest = torch.stack([(mixture.means.float() - m).norm(dim=1).argmin() for m in means])
    assert sorted(nearest.tolist()) == [0, 1, 2]
    assert torch.allclose(mixture.means[nearest].float(), means, atol=0.1)
    assert torch.allclose(mixture.log_weights[nearest].exp().float(), weights, atol=0.03)


def test_em_beats_a_single_gaussian_and_each_round_gains() -> None:
    x, _, _ = clusters(3000, seed=1)
    g = torch.Generator().manual_seed(0)
    scores = [float(fit_mixture(x, 3, torch.Generator().manual_seed(0), iterations=i)
                    .log_prob(x.double()).mean()) for i in (1, 3, 10, 30)]
    assert all(b >= a - 1e-9 for a, b in zip(scores, scores[1:], strict=False)), scores
    assert scores[-1] > float(fit_mixture(x, 1, g).log_prob(x.double()).mean()) + 1.0


def test_em_keeps_repeated_values_finite() -> None:
    # a lattice column: a component may settle on one value; the ridge keeps it finite
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randint(0, 3, (2000, 1), generator=g).float(),
                   torch.randn(2000, 1, generator=g)], dim=1)
    mixture = fit_mixture(x, 5, g)
    score = mixture.log_prob(x.double())
    assert torch.isfinite(score).all()
    # far above the best continuous fit of that column: the mass sits on the lattice
    assert float(score.mean()) > 2.0


def test_the_validation_rows_choose_the_size() -> None:
    x, _, _ = clusters(4000, seed=2)
    mixture, scores = select_mixture(x[:3000], x[3000:], generator=torch.Generator())
    # three clusters: one or two components are clearly worse than what was chosen
    assert scores[1] < scores[mixture.components] - 1.0
    assert scores[2] < scores[mixture.components] - 0.3
    assert mixture.components == max(scores, key=scores.get)


@pytest.mark.parametrize("builder", [maf, realnvp, nsf, unmix])
def test_flow_on_a_mixture_base_rebuilds_scores_and_integrates(builder) -> None:
    torch.manual_seed(0)
    flow = builder(2, layers=2, hidden=8, mixture=3)
    flow.set_mixture(random_mixture(2, 3, seed=5).float())
    # the layers are not the identity, so the test sees them and the base together
    with torch.no_grad():
        for p in flow.transform.parameters():
            p.add_(0.05 * torch.randn_like(p))
    twin = build(flow.config)
    twin.load_state_dict(flow.state_dict())
    x = torch.randn(64, 2) * 3
    with torch.no_grad():
        assert torch.equal(flow.log_prob(x), twin.log_prob(x))
        lo, hi, n = -16.0, 16.0, 481
        axis = torch.linspace(lo, hi, n)
        grid = torch.cartesian_prod(axis, axis)
        total = float(flow.double().log_prob(grid.double()).exp().sum()) * (
            (hi - lo) / (n - 1)) ** 2
    assert abs(total - 1.0) < 0.01, total
    assert flow.config["mixture"] == 3
    assert "mixture" not in builder(2, layers=2, hidden=8).config  # as in older files


def test_the_search_stops_when_the_target_is_out_of_reach() -> None:
    x, _, _ = clusters(4000, seed=3)
    _, free = select_mixture(x[:3000], x[3000:], generator=torch.Generator().manual_seed(0))
    assert 5 in free  # three clusters: sizes go on past 2 while they gain
    _, cut = select_mixture(x[:3000], x[3000:], generator=torch.Generator().manual_seed(0),
                            target=free[1] + 100.0)
    assert sorted(cut) == [1, 2]  # 1 -> 2 gains far less than half the way to the target
    _, near = select_mixture(x[:3000], x[3000:], generator=torch.Generator().manual_seed(0),
                             target=max(free.values()))
    assert sorted(near) == sorted(free)  # a reachable target does not cut the search


def test_gains_that_grow_with_size_keep_the_search_going(monkeypatch) -> None:
    import flowcli.engine.distributions as distributions

    # validation scores by size as on a lattice-valued table (the benchmark's pol): each
    # step up gains more than the one before, so 2 -> 5 -> 10 -> 20 reaches the target
    val = {1: -81.0, 2: -64.0, 5: 7.0, 10: 19.0, 20: 30.0}
    monkeypatch.setattr(distributions, "fit_mixture",
                        lambda x, k, generator=None, deadline=None: GaussianMixture(2, k))
    monkeypatch.setattr(distributions, "_sliced",
                        lambda fn, x: torch.tensor([val[fn.__self__.components]]))
    x = torch.randn(500, 2)
    best, scores = select_mixture(x, x, target=20.5)
    assert sorted(scores) == [1, 2, 5, 10, 20] and best.components == 20
    # far beyond what even those gains would reach, it stops after the first step
    _, scores = select_mixture(x, x, target=200.0)
    assert sorted(scores) == [1, 2]
    # with 30 rows only sizes up to 6 can be fitted: one step is left after 2, not three
    _, scores = select_mixture(x[:30], x[:30], target=20.5)
    assert sorted(scores) == [1, 2]


def test_a_covariance_that_cannot_be_factorized_ends_the_search(monkeypatch) -> None:
    import flowcli.engine.distributions as distributions

    real = distributions.fit_mixture

    def fails_above_two(x, k, *args, **kwargs):
        if k > 2:
            raise torch.linalg.LinAlgError("not positive-definite")
        return real(x, k, *args, **kwargs)

    monkeypatch.setattr(distributions, "fit_mixture", fails_above_two)
    x, _, _ = clusters(2000, seed=4)
    mixture, scores = select_mixture(x[:1500], x[1500:], generator=torch.Generator())
    assert sorted(scores) == [1, 2] and mixture.components == 2
    monkeypatch.setattr(distributions, "fit_mixture",
                        lambda *a, **k: (_ for _ in ()).throw(torch.linalg.LinAlgError("no")))
    mixture, scores = select_mixture(x[:1500], x[1500:], generator=torch.Generator())
    assert scores == {} and mixture.components == 1
    assert torch.equal(mixture.means, torch.zeros(1, 3, dtype=torch.float64))


def test_a_mixed_densitys_config_follows_its_flow() -> None:
    from flowcli.engine import build_mixed, rebuild_mixed

    density = build_mixed(3, [2], {"kind": "maf", "layers": 1, "hidden": 8, "mixture": 1})
    assert density.config["flow"]["mixture"] == 1
    density.flow.set_mixture(GaussianMixture(3, 4))
    config = density.config
    assert config["flow"]["mixture"] == 4 and config["cardinalities"] == [2]
    config["flow"]["mixture"] = 7  # a copy: editing it changes nothing
    assert density.flow.config["mixture"] == 4
    twin = rebuild_mixed(density.config)
    twin.load_state_dict(density.state_dict())
    assert twin.flow.base.components == 4
