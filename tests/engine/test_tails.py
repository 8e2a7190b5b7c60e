"""The heavy-tail layer: what it fits, which columns it leaves alone, and that it stays finite."""

from __future__ import annotations

import math

import torch

from flowcli.engine import Tails, build, build_mixed, fit_tails, nsf


def columns(n: int = 5000) -> torch.Tensor:
    """``1 + 3 sinh(y)``, a Gaussian, a log-normal and two humps, from independent normals."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(n, 4, generator=g, dtype=torch.float64)
    humps = torch.where(y[:, 3] > 0, 3.0, -3.0) + 0.5 * torch.randn(n, generator=g,
                                                                   dtype=torch.float64)
    return torch.stack([1 + 3 * torch.sinh(y[:, 0]), y[:, 1], torch.exp(y[:, 2]), humps], 1)


def test_fit_recovers_an_asinh_warp() -> None:
    x = columns()
    loc, scale, gain = fit_tails(x[:, :1])
    # maximum likelihood on 5,000 rows: about a tenth of the scale off at most
    assert abs(float(loc[0]) - 1.0) < 0.3, loc
    torch.testing.assert_close(scale[:, 0], torch.tensor([3.0, 3.0], dtype=x.dtype), rtol=0.15,
                               atol=0)
    layer = Tails(1).double().init_from(x[:, :1])
    z, _ = layer(x[:, :1])
    y = torch.asinh((x[:, 0] - 1) / 3)  # the Gaussian the column was made from
    assert torch.corrcoef(torch.stack([z[:, 0], y]))[0, 1] > 0.999
    # and standardized again for the layers after it
    assert abs(float(z.mean())) < 1e-6 and abs(float(z.std()) - 1.0) < 1e-3
    assert gain[0] > 0.1


def test_only_heavy_tailed_columns_are_compressed() -> None:
    layer = Tails(4).double().init_from(columns())
    assert layer.active.tolist() == [True, False, True, False]
    # the log-normal: log-like above its centre (a small scale), gentle below it
    assert float(layer.scale[1, 2]) < 0.5 < float(layer.scale[0, 2])
    # columns left alone pass through exactly
    x = columns(50)
    z, _ = layer(x)
    assert torch.equal(z[:, [1, 3]], x[:, [1, 3]])


def test_compressing_raises_the_gaussian_log_likelihood_it_reports() -> None:
    x = columns()[:, :1]
    _, _, gain = fit_tails(x)
    layer = Tails(1).double().init_from(x)
    z, ladj = layer(x)

    def gaussian_ll(v: torch.Tensor) -> float:
        return float(-0.5 * math.log(2 * math.pi * math.e * float(v.var(unbiased=False))))

    measured = gaussian_ll(z[:, 0]) + float(ladj.mean()) - gaussian_ll(x[:, 0])
    assert abs(measured - float(gain[0])) < 0.01, (measured, gain)


def test_too_few_values_and_constant_columns_are_left_alone() -> None:
    assert not Tails(4).double().init_from(columns(19)).active.any()
    assert not Tails(4).double().init_from(columns(0)).active.any()
    constant = torch.ones(100, 2, dtype=torch.float64)
    assert not Tails(2).double().init_from(constant).active.any()


def test_a_gap_leaves_out_its_own_value_only() -> None:
    x = columns()
    x[::2, 1] = math.nan
    x[: 4990, 3] = math.nan  # 10 values left: too few for this column, not for the others
    x[::3, 2] = math.nan
    layer = Tails(4).double().init_from(x)
    assert layer.active.tolist() == [True, False, True, False]
    full = Tails(4).double().init_from(columns())
    torch.testing.assert_close(layer.scale[:, 0], full.scale[:, 0])  # column 0 saw every row
    z, ladj = layer(x)
    assert torch.isnan(z[::3, 2]).all() and torch.isfinite(z[1::3, 2]).all()


def test_mapping_back_stays_finite_far_out_on_both_sides() -> None:
    layer = Tails(4).init_from(columns().float())
    assert layer.active[0] and layer.active[2]
    z = torch.tensor([[1e30, 0.0, -1e30, 0.0], [-1e30, 0.0, 1e30, 0.0], [1e4, 0.0, -1e4, 0.0]])
    x, ladj = layer.inverse(z)
    assert torch.isfinite(x).all() and torch.isfinite(ladj).all()
    assert x[0, 0] > 1e5 and x[1, 0] < -1e5 and x[0, 2] < x[1, 2]


def test_a_layer_that_compresses_nothing_is_dropped() -> None:
    rows = torch.randn(2000, 3)
    density = build_mixed(3, [], {"kind": "nsf", "layers": 2, "hidden": 8, "tails": True})
    density.init_from(rows)
    plain = build_mixed(3, [], {"kind": "nsf", "layers": 2, "hidden": 8})
    assert "tails" not in density.flow.config and density.config == plain.config
    assert list(density.state_dict()) == list(plain.state_dict())
    one = build_mixed(1, [], {"kind": "nsf", "layers": 1, "hidden": 8, "tails": True})
    one.init_from(rows[:, :1])
    assert list(one.state_dict()) == list(
        build_mixed(1, [], {"kind": "nsf", "layers": 1, "hidden": 8}).state_dict())


def test_spreads_that_differ_between_categories_are_not_heavy_tails() -> None:
    # Gaussian within each category, scale 1 in one and 10 in the other: pooled, the column
    # has heavy tails, but after the per-category layer it has none
    g = torch.Generator().manual_seed(0)
    c = torch.randint(0, 2, (4000, 1), generator=g).float()
    x = torch.randn(4000, 2, generator=g) * (1 + 9 * c)
    density = build_mixed(2, [2], {"kind": "nsf", "layers": 2, "hidden": 8, "tails": True})
    density.init_from(torch.cat([x, c], dim=1))
    assert "tails" not in density.flow.config
    heavy = torch.cat([torch.sinh(2 * x / (1 + 9 * c)), c], dim=1)  # heavy within each too
    density = build_mixed(2, [2], {"kind": "nsf", "layers": 2, "hidden": 8, "tails": True})
    density.init_from(heavy)
    assert density.flow.config["tails"]


def test_a_flow_with_tails_rebuilds_from_its_config_and_state() -> None:
    x = columns()[:, [0, 2]].float()
    flow = nsf(2, layers=2, hidden=16, tails=True)
    assert flow.config["tails"] is True and "tails" not in nsf(2, layers=2, hidden=16).config
    flow.transform.transforms[0].init_from(x)
    copy = build(flow.config)
    copy.load_state_dict(flow.state_dict())
    with torch.no_grad():
        assert torch.equal(copy.log_prob(x[:100]), flow.log_prob(x[:100]))
