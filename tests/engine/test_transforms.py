"""One conformance suite for every transform layer, in float64."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.autograd.functional import jacobian

from flowcli.engine import (
    AffineCoupling,
    Compose,
    ContextStandardize,
    ElementwiseAffine,
    ElementwiseSpline,
    Inverse,
    LULinear,
    MaskedAffineAutoregressive,
    MaskedSplineAutoregressive,
    MixedDensity,
    Tails,
    Transform,
    Whiten,
    alternating_mask,
    build,
    maf,
    nsf,
    realnvp,
    unmix,
)

Factory = Callable[[int, int], Transform]

LAYERS: dict[str, Factory] = {
    "coupling": lambda d, c: AffineCoupling(d, alternating_mask(d, 0), 16, 2, c),
    "coupling-odd": lambda d, c: AffineCoupling(d, alternating_mask(d, 1), 16, 1, c),
    "maf": lambda d, c: MaskedAffineAutoregressive(d, None, 16, 2, c),
    "maf-permuted": lambda d, c: MaskedAffineAutoregressive(d, torch.randperm(d), 16, 2, c),
    "elementwise": lambda d, c: ElementwiseAffine(d, 16, 2, c),
    "context-standardize": lambda d, c: ContextStandardize(d, max(c, 1)),
    "compose": lambda d, c: Compose(
        MaskedAffineAutoregressive(d, None, 16, 2, c),
        AffineCoupling(d, alternating_mask(d, 1), 16, 2, c),
    ),
    "inverse": lambda d, c: Inverse(MaskedAffineAutoregressive(d, None, 16, 2, c)),
    "flow-maf": lambda d, c: maf(d, 3, 16, 2, c).transform,
    "flow-realnvp": lambda d, c: realnvp(d, 3, 16, 2, c).transform,
    # bound 3 with inputs of scale 2: some rows fall in the identity tails, most in the splines
    "spline-ar": lambda d, c: MaskedSplineAutoregressive(d, torch.randperm(d), 16, 2, c, 5, 3.0),
    "spline-elementwise": lambda d, c: ElementwiseSpline(d, 16, 2, c, 4, 3.0),
    "flow-nsf": lambda d, c: nsf(d, 3, 16, 2, c, bins=6, bound=3.0).transform,
    "whiten": lambda d, c: Whiten(d, c).double().init_from(correlated_rows(d).double()),
    "flow-maf-whiten": lambda d, c: maf(d, 2, 16, 2, c, whiten=True).transform,
    "tails": lambda d, c: Tails(d, c).double().init_from(heavy_rows(d)),
    "lu-linear": lambda d, c: LULinear(d, c),
    "flow-unmix": lambda d, c: unmix(d, 2, 16, 2, c, bins=5, bound=3.0).transform,
}
ONE_D = {"elementwise", "context-standardize", "flow-maf", "flow-realnvp", "spline-elementwise",
         "flow-nsf", "whiten", "flow-maf-whiten", "tails", "flow-unmix"}


def correlated_rows(d: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(d)
    mix = torch.randn(d, d, generator=g) + 2 * torch.eye(d)
    return torch.randn(500, d, generator=g) @ mix.T + torch.arange(d) - 1.0


def heavy_rows(d: int) -> torch.Tensor:
    """Skewed, heavy-tailed columns centred near 0.5: rows of scale 2 fall on both sides."""
    g = torch.Generator().manual_seed(d)
    return torch.sinh(1.5 * torch.randn(2000, d, generator=g, dtype=torch.float64)) + 0.5


NEEDS_CONTEXT = {"context-standardize"}
FIXED = {"whiten", "tails"}  # set from data, not trained

CASES = [
    (name, d, c)
    for name in LAYERS
    for d in (1, 5)
    for c in (0, 3)
    if (d > 1 or name in ONE_D) and (c > 0 or name not in NEEDS_CONTEXT)
]


def randomize(t: Transform) -> Transform:
    """Move every parameter away from its identity-at-start value so the test means something."""
    with torch.no_grad():
        for p in t.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return t


def make(name: str, d: int, c: int) -> tuple[Transform, torch.Tensor, torch.Tensor | None]:
    t = randomize(LAYERS[name](d, c)).double()
    x = torch.randn(7, d, dtype=torch.float64) * 2
    ctx = torch.randn(7, c, dtype=torch.float64) if c else None
    return t, x, ctx


@pytest.mark.parametrize(("name", "d", "c"), CASES)
def test_inverse_undoes_forward(name: str, d: int, c: int) -> None:
    t, x, ctx = make(name, d, c)
    z, ladj = t(x, ctx)
    x2, ladj_inv = t.inverse(z, ctx)
    assert not torch.allclose(z, x)  # the transform is not the identity
    torch.testing.assert_close(x2, x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ladj + ladj_inv, torch.zeros(7, dtype=torch.float64),
                               rtol=0, atol=1e-9)
    assert ladj.shape == (7,)


@pytest.mark.parametrize(("name", "d", "c"), CASES)
def test_the_inverse_without_gradients_is_the_same_map(name: str, d: int, c: int) -> None:
    """Sampling runs the inverse without gradients, which autoregressive layers compute by
    a sweep (each hidden unit once): the same numbers as the inverse the Jacobian test sees."""
    t, x, ctx = make(name, d, c)
    z, _ = t(x, ctx)
    x_grad, ladj_grad = t.inverse(z, ctx)
    with torch.no_grad():
        x_swept, ladj_swept = t.inverse(z, ctx)
    torch.testing.assert_close(x_swept, x_grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ladj_swept, ladj_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("name", "d", "c"), CASES)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_logabsdet_matches_autograd_jacobian(name: str, d: int, c: int, direction: str) -> None:
    t, x, ctx = make(name, d, c)
    fn = t.forward if direction == "forward" else t.inverse
    _, ladj = fn(x, ctx)
    for row in range(x.shape[0]):
        c_row = None if ctx is None else ctx[row : row + 1]

        def f(v: torch.Tensor, c_row: torch.Tensor | None = c_row) -> torch.Tensor:
            return fn(v.unsqueeze(0), c_row)[0].squeeze(0)

        jac = jacobian(f, x[row])
        sign, logdet = torch.linalg.slogdet(jac)
        assert sign != 0
        torch.testing.assert_close(ladj[row], logdet, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("name", "d", "c"), CASES)
def test_every_parameter_gets_a_gradient(name: str, d: int, c: int) -> None:
    t, x, ctx = make(name, d, c)
    if name in FIXED:
        assert not list(t.parameters())
        return
    z, ladj = t(x, ctx)
    (z.pow(2).sum() - ladj.sum()).backward()
    for pname, p in t.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", ["maf", "coupling", "elementwise"])
def test_context_changes_the_output(name: str) -> None:
    t, x, ctx = make(name, 5, 3)
    z1, _ = t(x, ctx)
    z2, _ = t(x, ctx + 1.0)
    assert not torch.allclose(z1, z2)


def test_starts_as_identity() -> None:
    flow = maf(4, 3, 16)
    x = torch.randn(5, 4)
    z, ladj = flow.transform(x)
    torch.testing.assert_close(z, x)
    torch.testing.assert_close(ladj, torch.zeros(5))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t(torch.randn(4, 3)), r"expected inputs of shape \(B, 5\), got \(4, 3\)"),
        (lambda t: t(torch.randn(4, 5), torch.randn(4, 2)), "takes no context"),
        (lambda t: t.inverse(torch.randn(5)), r"expected inputs of shape \(B, 5\), got \(5,\)"),
    ],
)
def test_refuses_wrong_shapes(call: Callable[[Transform], object], message: str) -> None:
    t = MaskedAffineAutoregressive(5, None, 8, 1)
    with pytest.raises(ValueError, match=message):
        call(t)


def test_refuses_missing_context() -> None:
    t = AffineCoupling(5, alternating_mask(5, 0), 8, 1, context_features=2)
    with pytest.raises(ValueError, match=r"needs a context of shape \(B, 2\)"):
        t(torch.randn(4, 5))
    with pytest.raises(ValueError, match=r"expected context of shape \(4, 2\), got \(3, 2\)"):
        t(torch.randn(4, 5), torch.randn(3, 2))


def test_refuses_bad_masks_and_orders() -> None:
    with pytest.raises(ValueError, match="at least one feature"):
        AffineCoupling(3, torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="permutation"):
        MaskedAffineAutoregressive(3, torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="unknown flow kind"):
        build({"kind": "glow", "features": 2})


def test_scale_is_soft_bounded() -> None:
    t = ElementwiseAffine(2, scale_bound=3.0)
    with torch.no_grad():
        t.log_scale.fill_(1e6)
    _, ladj = t(torch.randn(4, 2))
    assert torch.all(ladj < 2 * 3.0)
    assert torch.all(ladj > 2 * 2.99)


def test_context_standardize_starts_at_each_categorys_mean_and_spread() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (6000,), generator=g)
    context = torch.nn.functional.one_hot(labels, 3).double()
    means, sds = torch.tensor([-2.0, 0.0, 5.0]), torch.tensor([0.5, 1.0, 2.0])
    noise = torch.randn(6000, generator=g, dtype=torch.float64)
    x = (means[labels] + sds[labels] * noise)[:, None]
    x[::7] = float("nan")  # gaps are left out of the fit
    t = ContextStandardize(1, 3).double().init_from(x, context)
    seen = ~torch.isnan(x[:, 0])
    with torch.no_grad():
        z, _ = t(x[seen], context[seen])
    for k in range(3):
        zk = z[labels[seen] == k, 0]
        assert abs(float(zk.mean())) < 0.05 and abs(float(zk.std()) - 1.0) < 0.1


@pytest.mark.parametrize("kind", ["nsf-ar", "nsf-1d"])
def test_splines_start_as_identity(kind: str) -> None:
    flow = nsf(4 if kind == "nsf-ar" else 1, 3, 16)
    x = torch.randn(50, flow.features) * 3
    z, ladj = flow.transform(x)
    torch.testing.assert_close(z, x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ladj, torch.zeros(50), rtol=0, atol=1e-5)


def test_spline_is_monotone_inside_and_the_identity_outside() -> None:
    t = randomize(ElementwiseSpline(1, bins=6, bound=2.0)).double()
    with torch.no_grad():
        t.raw.mul_(10)  # sharp bins
    x = torch.linspace(-4, 4, 4001, dtype=torch.float64)[:, None]
    z, ladj = t(x)
    assert torch.all(z[1:] > z[:-1])
    outside = x[:, 0].abs() > 2.0
    torch.testing.assert_close(z[outside], x[outside], rtol=0, atol=0)
    assert torch.all(ladj[outside] == 0)
    # the ends of the spline meet the identity: continuous at +-bound
    edge = t(torch.tensor([[-2.0], [2.0]], dtype=torch.float64))[0]
    torch.testing.assert_close(edge[:, 0], torch.tensor([-2.0, 2.0], dtype=torch.float64))


def test_whitening_makes_the_untrained_flow_the_gaussian_fit() -> None:
    x = correlated_rows(4)
    flow = maf(4, 2, 16, whiten=True)
    MixedDensity(flow, None).init_from(x)
    with torch.no_grad():
        z = flow.to_latent(x)
        ll = flow.log_prob(x).mean()
    torch.testing.assert_close(z.mean(0), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), torch.eye(4), atol=0.02, rtol=0)
    cov = torch.cov(x.double().T)
    gaussian = torch.distributions.MultivariateNormal(x.double().mean(0), cov)
    assert abs(float(ll) - float(gaussian.log_prob(x.double()).mean())) < 0.02


def test_whitening_with_too_few_complete_rows_stays_the_identity() -> None:
    x = correlated_rows(4)[:14]  # 7 complete rows, fewer than 2 x 4
    x[::2, 0] = float("nan")
    t = Whiten(4).init_from(x)
    torch.testing.assert_close(t.weight, torch.eye(4))


def test_the_scoring_form_of_the_spline_is_the_spline() -> None:
    """``rational_quadratic_forward`` (no autograd, parameter-major) gives what
    ``rational_quadratic`` gives, values on the bounds and outside included: the same to
    rounding in float64, and no further from float64 than the general form in float32."""
    from flowcli.engine.spline import rational_quadratic, rational_quadratic_forward

    g = torch.Generator().manual_seed(0)
    raw = torch.randn(3000, 23, 6, generator=g, dtype=torch.float64) * 2
    x = torch.randn(3000, 6, generator=g, dtype=torch.float64) * 3
    x[:4, 0] = torch.tensor([-5.0, 5.0, -7.5, 9.0], dtype=torch.float64)
    with torch.no_grad():
        truth = rational_quadratic(x, raw.transpose(1, 2), 5.0)
        by_parameter = raw.permute(1, 0, 2).contiguous()  # (23, B, D)
        fast = rational_quadratic_forward(x, by_parameter, 5.0)
        general32 = rational_quadratic(x.float(), raw.float().transpose(1, 2), 5.0)
        fast32 = rational_quadratic_forward(x.float(), by_parameter.float(), 5.0)
    for t, f, g32, f32 in zip(truth, fast, general32, fast32, strict=True):
        assert torch.allclose(t, f, atol=1e-10, rtol=0)
        worst = float((g32.double() - t).abs().max())
        assert float((f32.double() - t).abs().max()) <= 1.5 * worst + 1e-6
    assert torch.equal(fast[0][2:4, 0], x[2:4, 0])  # outside the interval: the identity
    assert torch.equal(fast[1][2:4, 0], torch.zeros(2, dtype=torch.float64))


def test_the_scoring_form_of_the_spline_survives_logits_past_float_range() -> None:
    """Width and height logits whose ``exp`` would overflow or underflow float32 take the
    shifted softmax, and agree with the general form, which always shifts."""
    from flowcli.engine.spline import rational_quadratic, rational_quadratic_forward

    g = torch.Generator().manual_seed(1)
    raw = torch.randn(200, 23, 3, generator=g)
    raw[:100, :16] += 150.0  # exp overflows
    raw[100:, :16] -= 150.0  # exp underflows to zero
    x = torch.randn(200, 3, generator=g) * 2
    with torch.no_grad():
        general = rational_quadratic(x, raw.transpose(1, 2), 5.0)
        fast = rational_quadratic_forward(x, raw.permute(1, 0, 2), 5.0)
    for a, b in zip(general, fast, strict=True):
        assert torch.isfinite(b).all()
        assert torch.allclose(a, b, atol=1e-4)


def test_a_spline_layer_scores_the_same_with_and_without_autograd() -> None:
    from flowcli.engine import nsf

    torch.manual_seed(0)
    flow = nsf(5, 3, 16)
    for p in flow.parameters():
        p.data += 0.3 * torch.randn_like(p)
    x = torch.randn(500, 5) * 2
    with_grad = flow.log_prob(x)
    with torch.no_grad():
        without = flow.log_prob(x)
    assert torch.allclose(with_grad.detach(), without, atol=1e-4)


@pytest.mark.parametrize("inverse", [False, True])
def test_a_spline_shared_by_every_row_is_the_spline_given_to_each_row(inverse: bool) -> None:
    """One spline per feature ``(1, D, 3K-1)`` is picked from without expanding it to the
    rows; values and gradients (of the inputs and of the shared parameters) are those of the
    same parameters given to every row, values outside the bound included."""
    from flowcli.engine.spline import rational_quadratic

    g = torch.Generator().manual_seed(3)
    x = (torch.randn(200, 4, generator=g, dtype=torch.float64) * 3).requires_grad_()
    shared = (torch.randn(1, 4, 14, generator=g, dtype=torch.float64)).requires_grad_()
    weights = torch.randn(2, 200, 4, generator=g, dtype=torch.float64)
    results = []
    for raw in (shared, shared.expand(200, -1, -1)):
        y, log_slope = rational_quadratic(x, raw, 5.0, inverse=inverse)
        loss = (weights[0] * y + weights[1] * log_slope).sum()
        results.append((y, log_slope, *torch.autograd.grad(loss, (x, shared))))
    assert (x.abs() > 5).any()
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
