"""The categorical chain and the mixed density are normalized distributions."""

from __future__ import annotations

import itertools

import pytest
import torch

from flowcli.engine import CategoricalChain, build_mixed


def randomize(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))


def test_chain_probabilities_sum_to_one_over_all_combinations() -> None:
    chain = CategoricalChain([3, 2, 4], hidden=8).double()
    randomize(chain)
    combos = torch.tensor(list(itertools.product(range(3), range(2), range(4))),
                          dtype=torch.float64)
    probs = chain.log_prob(combos).exp()
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert probs.std() > 0.001  # the random weights made it far from uniform


def test_chain_samples_follow_its_probabilities() -> None:
    chain = CategoricalChain([2, 3], hidden=8)
    randomize(chain)
    draws = chain.sample(40000, torch.Generator().manual_seed(0))
    combos = torch.tensor(list(itertools.product(range(2), range(3))), dtype=torch.float32)
    expected = chain.log_prob(combos).exp().detach()
    observed = torch.stack([((draws == c).all(dim=1)).float().mean() for c in combos])
    torch.testing.assert_close(observed, expected, atol=0.01, rtol=0)


def test_mixed_density_integrates_to_one() -> None:
    density = build_mixed(1, [3], {"kind": "maf", "layers": 2, "hidden": 8}).double()
    randomize(density)
    grid = torch.linspace(-40, 40, 40001, dtype=torch.float64)
    step = float(grid[1] - grid[0])
    total = 0.0
    with torch.no_grad():
        for c in range(3):
            rows = torch.stack([grid, torch.full_like(grid, c)], dim=1)
            total += float(density.log_prob(rows).exp().sum()) * step
    assert abs(total - 1.0) < 1e-3, total


def test_missing_value_fill_is_deterministic_in_eval_and_random_in_training() -> None:
    density = build_mixed(2, [2], {"kind": "maf", "layers": 2, "hidden": 8})
    randomize(density)
    rows = torch.tensor([[0.3, float("nan"), 1.0]])
    density.eval()
    assert torch.equal(density.log_prob(rows), density.log_prob(rows))
    assert torch.isfinite(density.log_prob(rows)).all()
    density.train()
    draws = torch.stack([density.log_prob(rows) for _ in range(5)])
    assert draws.unique().numel() > 1


def test_conditional_chain_sums_to_one_for_each_context() -> None:
    chain = CategoricalChain([3, 2], hidden=8, context_features=2).double()
    randomize(chain)
    combos = torch.tensor(list(itertools.product(range(3), range(2))), dtype=torch.float64)
    sums, firsts = [], []
    with torch.no_grad():
        for g in ([0.0, 0.0], [1.5, -2.0]):
            context = torch.tensor([g], dtype=torch.float64).expand(len(combos), -1)
            probs = chain.log_prob(combos, context).exp()
            sums.append(float(probs.sum()))
            firsts.append(probs[0])
    assert max(abs(s - 1.0) for s in sums) < 1e-12
    assert abs(float(firsts[0] - firsts[1])) > 1e-3  # the context changes the probabilities


def test_conditional_mixed_density_integrates_to_one_for_each_condition() -> None:
    density = build_mixed(1, [2], {"kind": "maf", "layers": 2, "hidden": 8},
                          given=2).double()
    randomize(density)
    grid = torch.linspace(-40, 40, 40001, dtype=torch.float64)
    step = float(grid[1] - grid[0])
    totals, at_zero = [], []
    with torch.no_grad():
        for g in ([0.0, 0.0], [1.0, -0.5]):
            total = 0.0
            for c in range(2):
                rows = torch.stack([grid, torch.full_like(grid, c),
                                    *[torch.full_like(grid, v) for v in g]], dim=1)
                total += float(density.log_prob(rows).exp().sum()) * step
            totals.append(total)
            at_zero.append(float(density.log_prob(rows[20000:20001])))
    assert all(abs(t - 1.0) < 1e-3 for t in totals), totals
    assert abs(at_zero[0] - at_zero[1]) > 1e-3  # the condition changes the density


def test_conditional_density_samples_need_one_condition_per_row() -> None:
    density = build_mixed(2, [2], {"kind": "maf", "layers": 2, "hidden": 8}, given=1)
    g = torch.zeros(5, 1)
    assert density.sample(5, given=g).shape == (5, 3)
    with pytest.raises(ValueError, match="condition"):
        density.sample(5)
    rows = torch.cat([density.sample(5, given=g), g], dim=1)
    z = density.to_latent(rows)
    back = density.from_latent(z, rows[:, 2:3], g)
    torch.testing.assert_close(back, rows[:, :3], atol=1e-4, rtol=1e-4)
