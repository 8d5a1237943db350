"""Issue 15's density defaults: spline tails, the property battery on the new options, builder defaults."""

from __future__ import annotations

import math
import re

import pytest
import test_properties as battery  # module import: its tests are not collected twice
import torch
from registry import FlowCase, TransformCase

import pyro_flowzoo as fz
from pyro_flowzoo.nn import MLP
from pyro_flowzoo.transforms import (
    AdditiveCoupling,
    AffineCoupling,
    ConditionalAffineCoupling,
    ConditionalMaskedAffineAutoregressive,
    ElementwiseSpline,
    MaskedAffineAutoregressive,
    MixtureCDFAutoregressive,
    NeuralSplineAutoregressive,
    NeuralSplineCoupling,
    half_mask,
)
from pyro_flowzoo.transforms.coupling import bound_input
from pyro_flowzoo.transforms.spline import _knots, initial_bin_logits, rational_quadratic_spline, spline_params


def _wide(event_shape, scale=3.0):
    """Normal draws wide enough that many fall outside a spline's interval (both tails)."""
    return lambda batch_shape: scale * torch.randn(batch_shape + event_shape, dtype=torch.float64)


def _spline_cases(tag: str, num_bins: int, bound: float, **option) -> list[TransformCase]:
    """The three spline layers (the autoregressive one in both orders) with one option set, on wide draws."""

    def case(name, make, dim, **kw):
        return TransformCase(f"{name}-{tag}", make, (dim,), sample_x=_wide((dim,)), perturb=0.5, **kw)

    def autoregressive(reverse):
        return lambda: NeuralSplineAutoregressive(3, num_bins, (8,), bound, reverse=reverse, **option)

    return [
        case("ElementwiseSpline", lambda: ElementwiseSpline(2, num_bins, bound, **option), 2),
        case("NeuralSplineAutoregressive", autoregressive(False), 3, autoregressive=True),
        case("NeuralSplineAutoregressive-reversed", autoregressive(True), 3, autoregressive="reversed"),
        case("NeuralSplineCoupling", lambda: NeuralSplineCoupling(half_mask(3), num_bins, (8,), bound, **option), 3),
    ]


LINEAR_TAIL_TRANSFORMS = _spline_cases("linear", 4, 2.0, tails="linear")

TRANSFORM_CHECKS = [
    battery.test_round_trips,
    battery.test_log_det_matches_autograd,
    battery.test_inverse_log_det_is_negative,
    battery.test_gradients_reach_every_parameter,
    battery.test_memo_is_never_stale,
    battery.test_copy_pickle_state_dict,
    battery.test_dtypes_and_buffers_move,
]


@pytest.mark.parametrize("case", LINEAR_TAIL_TRANSFORMS, ids=battery.tids(LINEAR_TAIL_TRANSFORMS))
@pytest.mark.parametrize("check", TRANSFORM_CHECKS, ids=lambda f: f.__name__[5:])
def test_linear_tails_pass_the_transform_battery(case, check):
    check(case)


@pytest.mark.parametrize("case", [c for c in LINEAR_TAIL_TRANSFORMS if c.autoregressive], ids=lambda c: c.id)
def test_linear_tails_keep_the_jacobian_triangular(case):
    battery.test_jacobian_is_triangular(case)


@pytest.mark.parametrize("case", LINEAR_TAIL_TRANSFORMS, ids=battery.tids(LINEAR_TAIL_TRANSFORMS))
def test_linear_tail_shapes(case):
    for batch_shape in battery.BATCH_SHAPES:
        battery.test_shapes(case, batch_shape)


LINEAR_TAIL_FLOWS = [
    FlowCase(
        "nsf_ar", (2,), {"num_layers": 2, "hidden_dims": (8,), "num_bins": 4, "tails": "linear"}, id="nsf_ar-linear"
    ),
    FlowCase("nsf_ar", (1,), {"num_layers": 2, "num_bins": 4, "tails": "linear"}, id="nsf_ar-1-linear", perturb=0.3),
    FlowCase(
        "nsf_coupling",
        (2,),
        {"num_layers": 2, "hidden_dims": (8,), "num_bins": 4, "tails": "linear", "bound": 3.0},
        id="nsf_coupling-linear",
        perturb=0.3,
    ),
]

FLOW_CHECKS = [
    battery.test_flow_shapes_and_round_trip,
    battery.test_flow_log_prob_matches_pyro_distribution,
    battery.test_flow_density_integrates_to_one,
    battery.test_flow_repeated_mle_steps_through_pyro,
    battery.test_flow_copy_pickle_state_dict,
    battery.test_flow_dtypes,
]


@pytest.mark.parametrize("case", LINEAR_TAIL_FLOWS, ids=battery.tids(LINEAR_TAIL_FLOWS))
@pytest.mark.parametrize("check", FLOW_CHECKS, ids=lambda f: f.__name__[5:])
def test_linear_tail_flows_pass_the_flow_battery(case, check):
    check(case)


# -- what linear tails are ---------------------------------------------------------------------------------
def _raw(num_bins: int, tails: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(spline_params(num_bins, tails), generator=g, dtype=torch.float64)
    return raw[:num_bins], raw[num_bins : 2 * num_bins], raw[2 * num_bins :]


def test_linear_tails_are_lines_with_the_end_derivatives_as_slopes():
    w, h, d = _raw(4, "linear")
    x = torch.tensor([-9.0, -6.0, -3.0, 3.0, 6.0, 9.0], dtype=torch.float64)
    y, log_det = rational_quadratic_spline(x, w, h, d, bound=3.0)
    slope_low, slope_high = (y[1] - y[0]) / 3, (y[5] - y[4]) / 3
    # each tail is a line through the interval's end, with the log of its slope as log-det
    assert torch.allclose((y[2] - y[1]) / 3, slope_low) and torch.allclose((y[4] - y[3]) / 3, slope_high)
    assert y[2].item() == pytest.approx(-3.0) and y[3].item() == pytest.approx(3.0)
    assert torch.allclose(log_det[:2], slope_low.log()) and torch.allclose(log_det[4:], slope_high.log())
    # the slopes are learned (not 1: not the identity) and differ between the ends
    assert abs(slope_low.item() - 1) > 0.05 and abs(slope_high.item() - slope_low.item()) > 0.05


def test_linear_tails_are_c1_at_the_interval_ends():
    w, h, d = _raw(5, "linear", seed=1)
    for end in (-2.0, 2.0):
        x = torch.tensor([end - 1e-6, end + 1e-6], dtype=torch.float64)
        _, log_det = rational_quadratic_spline(x, w, h, d, bound=2.0)
        assert log_det[0].item() == pytest.approx(log_det[1].item(), abs=1e-4)


def test_zero_parameters_are_the_identity_with_either_tails():
    x = torch.linspace(-20, 20, 101, dtype=torch.float64)
    for tails in ("identity", "linear"):
        zeros = [torch.zeros(n, dtype=torch.float64) for n in (4, 4, spline_params(4, tails) - 8)]
        y, log_det = rational_quadratic_spline(x, *zeros, bound=5.0)
        assert torch.allclose(y, x) and log_det.abs().max() < 1e-12


def test_wrong_derivative_count_and_unknown_tails_are_refused():
    with pytest.raises(ValueError, match="K - 1"):
        rational_quadratic_spline(torch.zeros(3), torch.zeros(4), torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="tails"):
        NeuralSplineCoupling(half_mask(2), 4, (8,), tails="cubic")
    with pytest.raises(ValueError, match="tails"):
        fz.build("nsf_ar", (2,), tails="quadratic")


def test_elementwise_spline_is_one_parameter_tensor():
    """Widths, heights and derivatives are one tensor (one optimizer state, not three), split as the splines'."""
    for tails in ("identity", "linear"):
        t = ElementwiseSpline(3, num_bins=4, bound=2.0, tails=tails)
        assert [name for name, _ in t.named_parameters()] == ["raw"]
        assert t.raw.shape == (3, spline_params(4, tails))
        with torch.no_grad():
            t.raw.normal_()
        widths, heights, derivatives = t.raw.split([4, 4, spline_params(4, tails) - 8], -1)
        x = 3 * torch.randn(10, 3)
        y, _ = rational_quadratic_spline(x, widths, heights, derivatives, bound=2.0)
        assert torch.equal(t.inv(x), y)


# -- builder defaults by dimension ----------------------------------------------------------------------
def _layers(flow, cls):
    return [t for t in flow.transforms if isinstance(t, cls)]


def test_two_d_builders_keep_the_toy_sizes():
    mafs = _layers(fz.build("maf", (2,)), MaskedAffineAutoregressive)
    assert len(mafs) == 24 and mafs[0].made.hidden_dims == (64, 64)
    couplings = _layers(fz.build("realnvp", (2,)), AffineCoupling)
    assert len(couplings) == 12 and max(p.shape[0] for p in couplings[0].parameters() if p.dim() == 2) == 64
    splines = _layers(fz.build("nsf_ar", (2,)), NeuralSplineAutoregressive)
    assert len(splines) == 3 and splines[0].made.hidden_dims == (64, 64)
    coupling_splines = _layers(fz.build("nsf_coupling", (2,)), NeuralSplineCoupling)
    assert len(coupling_splines) == 3 and coupling_splines[0].num_bins == 8
    assert [c.mask.tolist() for c in coupling_splines[:2]] == [[True, False], [False, True]]
    mixtures = _layers(fz.build("ar_flow", (2,)), MixtureCDFAutoregressive)
    assert len(mixtures) == 1 and mixtures[0].num_components == 8
    nice_couplings = _layers(fz.build("nice", (2,)), AdditiveCoupling)
    assert len(nice_couplings) == 8 and max(p.shape[0] for p in nice_couplings[0].parameters() if p.dim() == 2) == 256


def test_builders_above_two_d_are_smaller():
    mafs = _layers(fz.build("maf", (6,)), MaskedAffineAutoregressive)  # fewer layers, zuko's width
    assert len(mafs) == 3 and mafs[0].made.hidden_dims == (64, 64)
    assert _layers(fz.build("maf", (40,)), MaskedAffineAutoregressive)[0].made.hidden_dims == (80, 80)
    couplings = _layers(fz.build("realnvp", (6,)), AffineCoupling)
    # the data-side coupling (the last) keeps the even entries: later entries given earlier ones
    assert len(couplings) == 4 and [c.mask.tolist() for c in couplings[-2:]] == [[False, True] * 3, [True, False] * 3]
    assert max(p.shape[0] for p in couplings[0].parameters() if p.dim() == 2) == 32
    splines = _layers(fz.build("nsf_ar", (6,)), NeuralSplineAutoregressive)
    assert len(splines) == 2 and splines[0].made.hidden_dims == (32, 32) and splines[0].input_bound == 2.0
    coupling_splines = _layers(fz.build("nsf_coupling", (6,)), NeuralSplineCoupling)
    assert len(coupling_splines) == 2 and coupling_splines[0].num_bins == 4
    assert coupling_splines[-1].mask.tolist() == [True, False] * 3
    mixtures = _layers(fz.build("ar_flow", (6,)), MixtureCDFAutoregressive)
    assert len(mixtures) == 2 and mixtures[0].num_components == 4
    nice_net = _layers(fz.build("nice", (6,)), AdditiveCoupling)[0].net
    assert max(p.shape[0] for p in nice_net.parameters() if p.dim() == 2) == 32
    # explicit sizes still win
    assert len(_layers(fz.build("maf", (6,), num_layers=24), MaskedAffineAutoregressive)) == 24
    assert _layers(fz.build("nsf_coupling", (6,), num_bins=8), NeuralSplineCoupling)[0].num_bins == 8


# -- centered knots ----------------------------------------------------------------------------------------
CENTERED_KNOT_TRANSFORMS = _spline_cases("centered", 6, 3.0, knots="centered")


@pytest.mark.parametrize("case", CENTERED_KNOT_TRANSFORMS, ids=battery.tids(CENTERED_KNOT_TRANSFORMS))
@pytest.mark.parametrize("check", TRANSFORM_CHECKS, ids=lambda f: f.__name__[5:])
def test_centered_knots_pass_the_transform_battery(case, check):
    check(case)


def _mixture_cdf(x: float, bound: float) -> float:
    """CDF of 0.5 U(-B, B) + 0.5 N(0, 1) truncated to [-B, B], written out with math.erf."""
    phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))  # noqa: E731
    return 0.5 * (x + bound) / (2 * bound) + 0.5 * (phi(x) - phi(-bound)) / (phi(bound) - phi(-bound))


@pytest.mark.parametrize("num_bins, bound", [(8, 5.0), (5, 3.0)])
def test_centered_knots_are_equal_mass_bins_of_the_mixture(num_bins, bound):
    logits = initial_bin_logits(num_bins, bound, "centered").double()
    edges = _knots(logits, bound)
    masses = [_mixture_cdf(e, bound) for e in edges.tolist()]
    assert masses == pytest.approx([k / num_bins for k in range(num_bins + 1)], abs=1e-6)
    assert torch.allclose(edges, -edges.flip(0), atol=1e-9)  # symmetric
    widths = edges.diff()
    assert widths[num_bins // 2 - 1] < 2 * bound / num_bins < widths[0]  # finer than uniform at 0, coarser at the ends
    assert torch.equal(initial_bin_logits(num_bins, bound), torch.zeros(num_bins))


def test_fresh_layers_with_centered_knots_are_the_identity_with_those_knots():
    x = torch.linspace(-7, 7, 201).unsqueeze(-1).expand(-1, 2)
    centered = _knots(initial_bin_logits(8, 5.0, "centered"), 5.0)
    elementwise = ElementwiseSpline(2, num_bins=8, bound=5.0, knots="centered")
    coupling = NeuralSplineCoupling(half_mask(2), 8, (8,), bound=5.0, knots="centered")
    for t in (elementwise, coupling):
        assert torch.allclose(t(x), x, atol=1e-5)
    raw = coupling.net.net[-1].bias.view(1, -1)
    assert torch.allclose(_knots(raw[:, :8], 5.0)[0], centered, atol=1e-5)
    assert torch.allclose(_knots(raw[:, 8:16], 5.0)[0], centered, atol=1e-5)
    autoregressive = NeuralSplineAutoregressive(2, 8, (8,), bound=5.0, knots="centered")
    assert torch.allclose(_knots(autoregressive.made.output_bias[..., :8], 5.0), centered.expand(2, -1), atol=1e-5)


def test_spline_builders_center_the_knots_for_two_d_only():
    def kinds(name, shape, **kw):
        flow = fz.build(name, shape, **kw)
        return {t.knots for t in flow.transforms if hasattr(t, "knots")}

    for name in ("nsf_ar", "nsf_coupling"):
        assert kinds(name, (2,)) == {"centered"}
        assert kinds(name, (1,)) == kinds(name, (6,)) == {"uniform"}
        assert kinds(name, (2,), knots="uniform") == {"uniform"}
    assert len(_layers(fz.build("nsf_coupling", (1,)), ElementwiseSpline)) == 4
    for shape in ((1,), (2,)):
        assert kinds("nsf_coupling", shape, knots="centered") == {"centered"}
    for name in ("nsf_ar", "nsf_coupling"):
        with pytest.raises(ValueError, match="knots must be one of"):
            fz.build(name, (2,), knots="quantile")
        with pytest.raises(ValueError, match="knots must be one of"):
            fz.build(name, (2,), knots="quantile", context_shape=(3,))
    with pytest.raises(ValueError, match="knots must be one of"):
        ElementwiseSpline(1, knots="even")


# -- maf's input squash ------------------------------------------------------------------------------------
ASINH_MAF = [
    TransformCase(
        "AffineCoupling-asinh",
        lambda: AffineCoupling(
            torch.tensor([True, False, True]),
            MLP(2, 2, (8,)),
            split_channels=True,
            input_bound=1.0,
            input_squash="asinh",
        ),
        (3,),
        sample_x=_wide((3,)),
        perturb=0.5,
    ),
    TransformCase(
        "MaskedAffineAutoregressive-asinh",
        lambda: MaskedAffineAutoregressive(3, hidden_dims=(8,), input_bound=1.0, input_squash="asinh"),
        (3,),
        sample_x=_wide((3,)),
        autoregressive=True,
        perturb=0.5,
    ),
]


@pytest.mark.parametrize("case", ASINH_MAF, ids=battery.tids(ASINH_MAF))
@pytest.mark.parametrize("check", TRANSFORM_CHECKS, ids=lambda f: f.__name__[5:])
def test_asinh_squash_passes_the_transform_battery(case, check):
    check(case)


def test_asinh_squash_keeps_growing_where_tanh_levels_off():
    x = torch.tensor([0.5, 4.0, 40.0, 400.0], dtype=torch.float64)
    tanh, asinh = bound_input(x, 2.0), bound_input(x, 2.0, "asinh")
    assert torch.allclose(asinh, 2 * torch.asinh(x / 2)) and torch.allclose(tanh, 2 * torch.tanh(x / 2))
    assert (tanh <= 2).all() and asinh[-1] > 10 > asinh[-2] > asinh[-3] > tanh[-1]


@pytest.mark.parametrize("name, layer", [("maf", MaskedAffineAutoregressive), ("realnvp", AffineCoupling)])
def test_squash_defaults_by_dimension(name, layer):
    def squashes(shape, **kw):
        return {t.input_squash for t in _layers(fz.build(name, shape, **kw), layer)}

    assert squashes((2,)) == {"tanh"}
    assert squashes((3,)) == squashes((6,)) == {"asinh"}
    assert squashes((6,), input_squash="tanh") == {"tanh"}
    with pytest.raises(ValueError, match="input_squash must be one of"):
        fz.build(name, (6,), input_squash="atan")


def test_unknown_or_misplaced_squash_is_refused():
    with pytest.raises(ValueError, match="input_squash must be one of"):
        MaskedAffineAutoregressive(3, input_squash="atan")
    with pytest.raises(ValueError, match="input_squash must be one of"):
        AffineCoupling(torch.tensor([True, False]), MLP(1, 2, (4,)), split_channels=True, input_squash="atan")
    with pytest.raises(TypeError, match="does not take"):
        fz.build("realnvp", (1, 4, 4), input_squash="asinh")


# -- checkpoints saved under the former defaults ---------------------------------------------------------
_DATA = {"shift_side": "data"}  # the shift side of every version before 4
_FORMER = (
    "mask_anchor",
    "input_squash",
    "shift_side",
    "affine_layer",
    "base_df",
)  # hyper-parameters whose defaults changed since version 2


@pytest.mark.parametrize(
    "name, shape, former",
    [
        ("maf", (4,), {"input_squash": "tanh", "num_layers": 2, "shift_side": "data", "hidden_dims": (32, 32)}),
        ("nsf_coupling", (2,), {"num_layers": 4, "knots": "uniform", "mask_anchor": "latent"}),
        ("nsf_ar", (2,), {"knots": "uniform", "num_layers": 1}),
    ],
)
def test_checkpoints_without_a_defaults_version_rebuild_with_the_former_defaults(name, shape, former, tmp_path):
    """A checkpoint saved before DEFAULTS_VERSION 2 records only the user's hyper-parameters: it must come
    back with the defaults of its time (same modules, same density), not today's."""
    from pyro_flowzoo.checkpoint import checkpoint_payload, flow_from_checkpoint, save_checkpoint

    flow = fz.build(name, shape, **former)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = 3 * torch.randn(16, *shape)
    expected = flow.log_prob(x)
    payload = checkpoint_payload(flow)
    assert payload["defaults"] == fz.checkpoint.DEFAULTS_VERSION
    del payload["defaults"]
    payload["hparams"] = {k: v for k, v in payload["hparams"].items() if k not in ("knots",) + _FORMER}
    if name == "nsf_coupling":
        del payload["hparams"]["num_layers"]  # the user never passed it: 4 was the 2-D default
    if name == "maf":
        del payload["hparams"]["hidden_dims"]  # the user never passed it: (32, 32) was the default for D = 4
    save_checkpoint(tmp_path / "old.pt", payload)
    again, _ = flow_from_checkpoint(tmp_path / "old.pt")
    assert torch.allclose(again.log_prob(x), expected, atol=1e-5)
    # the same checkpoint read as today's would be another flow: a different layer count or another shift side
    payload["defaults"] = fz.checkpoint.DEFAULTS_VERSION
    if name in ("maf", "nsf_coupling"):
        with pytest.raises(fz.checkpoint.CheckpointError, match="cannot rebuild"):
            flow_from_checkpoint(payload)


def test_guides_keep_the_knots_they_are_given():
    import pyro

    from pyro_flowzoo.infer import AutoFlowGuide

    def model():
        pyro.sample("z", pyro.distributions.Normal(torch.zeros(2), 1.0).to_event(1))

    centered = initial_bin_logits(8, 5.0, "centered")
    for knots, logits in (("centered", centered), ("uniform", torch.zeros(8))):
        guide = AutoFlowGuide(model, flow="nsf_ar", knots=knots)
        guide()
        (layer,) = [m for m in guide.flow.modules() if isinstance(m, NeuralSplineAutoregressive)]
        bias = layer.made.output_bias
        assert torch.allclose(bias[..., :8], logits.expand(2, -1), atol=1e-6)
        assert torch.allclose(bias[..., 8:16], logits.expand(2, -1), atol=1e-6)
        assert (bias[..., 16:] == 0).all() and (layer.made.arn.layers[-1].weight == 0).all()


# -- coupling masks anchored at the data side (defaults version 3) ----------------------------------------
def test_alternating_masks_are_anchored_at_the_data_side():
    from pyro_flowzoo.transforms import alternating_masks

    for n in (1, 2, 3, 4, 5):
        for dim in (2, 5, 6):
            even, half = alternating_masks(dim, n, "even_odd"), alternating_masks(dim, n, "half")
            assert even[-1].tolist() == [i % 2 == 0 for i in range(dim)]  # the data-side layer keeps the even entries
            assert half[-1].tolist() == [i < dim // 2 for i in range(dim)]
            latent = alternating_masks(dim, n, "even_odd", anchor="latent")
            assert latent[0].tolist() == [i % 2 == 0 for i in range(dim)]
            assert [m.tolist() for m in latent] == [m.tolist() for m in (even if n % 2 else [~m for m in even])]
            for masks in (even, half, latent):  # alternating: every entry is changed by every other layer
                assert all(bool((a ^ b).all()) for a, b in zip(masks[:-1], masks[1:]))
    # the masks of defaults version 2, as its doctest printed them
    assert [m.int().tolist() for m in alternating_masks(3, 2, "even_odd", anchor="latent")] == [[1, 0, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match="mask kind must be one of"):
        alternating_masks(4, 2, "checkerboard")
    with pytest.raises(ValueError, match="mask_anchor must be one of"):
        fz.build("realnvp", (4,), mask_anchor="middle")


def _masks(flow):
    return [m.mask.tolist() for m in flow.modules() if isinstance(getattr(m, "mask", None), torch.Tensor)]


@pytest.mark.parametrize(
    "name, shape, former",
    [
        ("realnvp", (3,), {"hidden_dims": (8,), "input_squash": "tanh", "shift_side": "data"}),  # 4 layers, D >= 3
        ("realnvp", (6,), {"hidden_dims": (8,), "num_layers": None, "mask": None, "input_squash": "tanh"} | _DATA),
        ("realnvp", (2,), {"hidden_dims": (8,), "base_df": False}),  # 12 layers for D = 2
        ("realnvp", (2,), {"hidden_dims": (8,), "num_layers": 3, "base_df": False}),
        ("realnvp", (4,), {"hidden_dims": (8,), "mask": "half", "input_squash": "tanh", "shift_side": "data"}),
        ("realnvp", (2,), {"hidden_dims": (8,), "mask": "half", "num_layers": 2, "base_df": False}),
        ("nice", (5,), {"hidden_dims": (8,)}),  # 8 layers
        ("nsf_coupling", (5,), {"hidden_dims": (8,), "affine_layer": False}),  # 2 layers for D >= 3
        ("nsf_coupling", (2,), {"hidden_dims": (8,), "context_shape": (3,)}),  # 4 layers, conditional 2-D
    ],
)
def test_version_2_checkpoints_keep_their_latent_anchored_masks(name, shape, former, tmp_path):
    """Under defaults version 2 the first (latent-side) layer kept the even entries / the first half, today's
    ``mask_anchor="latent"``. Such a checkpoint comes back with the same masks and density; read as today's
    it is refused where today's masks differ, never loaded into the wrong layout."""
    from pyro_flowzoo.checkpoint import checkpoint_payload, flow_from_checkpoint, save_checkpoint

    flow = fz.build(name, shape, mask_anchor="latent", **former)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(16, *shape)
    kw = {"context": torch.randn(16, 3)} if "context_shape" in former else {}
    expected = flow.log_prob(x, **kw)
    payload = checkpoint_payload(flow)
    payload["hparams"] = {k: v for k, v in payload["hparams"].items() if k not in _FORMER}
    payload["defaults"] = 2
    save_checkpoint(tmp_path / "v2.pt", payload)
    again, _ = flow_from_checkpoint(tmp_path / "v2.pt")
    assert _masks(again) == _masks(flow)
    assert torch.allclose(again.log_prob(x, **kw), expected, atol=1e-5)
    assert {getattr(m, "input_squash", None) for m in again.modules()} == {
        getattr(m, "input_squash", None) for m in flow.modules()
    }
    payload["defaults"] = fz.checkpoint.DEFAULTS_VERSION
    for option in ("affine_layer", "base_df"):  # the same flow as today but for the masks (versions 5 and 6)
        if option in former:
            payload["hparams"][option] = former[option]
    hparams = {k: v for k, v in payload["hparams"].items() if k != "event_shape"}
    if _masks(fz.build(name, shape, **hparams)) == _masks(flow):  # 2-D realnvp, odd counts: the same masks today
        today, _ = flow_from_checkpoint(payload)
        assert torch.allclose(today.log_prob(x, **kw), expected, atol=1e-5)
    else:
        with pytest.raises(fz.checkpoint.CheckpointError, match="mask: the saved layer keeps other entries"):
            flow_from_checkpoint(payload)


def test_a_refused_mask_is_refused_again():
    """A load refused for its masks leaves the layer's mask as it was: a second try cannot slip through."""
    saved = fz.build("realnvp", (2,), num_layers=2, hidden_dims=(8,), mask_anchor="latent")
    other = fz.build("realnvp", (2,), num_layers=2, hidden_dims=(8,), mask_anchor="data")
    before = _masks(other)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="mask: the saved layer keeps other entries"):
            other.load_state_dict(saved.state_dict())
        assert _masks(other) == before


def test_resuming_a_version_2_run_names_the_former_defaults(tmp_path):
    from pyro_flowzoo.checkpoint import load_checkpoint, save_checkpoint
    from pyro_flowzoo.train import fit

    data = torch.randn(64, 4)
    kw = dict(steps=2, batch_size=32, seed=0, progress=False)
    former = dict(mask_anchor="latent", input_squash="tanh", shift_side="data")
    flow = fz.build("realnvp", (4,), hidden_dims=(8,), **former)
    fit(flow, data, checkpoint=tmp_path / "run.pt", **kw)
    payload = load_checkpoint(tmp_path / "run.pt")
    payload["hparams"] = {k: v for k, v in payload["hparams"].items() if k not in _FORMER}
    payload["defaults"] = 2
    save_checkpoint(tmp_path / "old.pt", payload)
    with pytest.raises(
        fz.checkpoint.CheckpointError, match="mask_anchor='latent', input_squash='tanh', shift_side='data' to resume"
    ):
        fit(fz.build("realnvp", (4,), hidden_dims=(8,)), data, resume=tmp_path / "old.pt", **{**kw, "steps": 4})
    resumed = fz.build("realnvp", (4,), hidden_dims=(8,), **former)
    assert fit(resumed, data, resume=tmp_path / "old.pt", **{**kw, "steps": 4}).steps == 4


def test_data_side_coupling_masks_by_builder_and_dimension():
    def last(flow, cls):
        return _layers(flow, cls)[-1].mask.tolist()

    assert last(fz.build("realnvp", (5,)), AffineCoupling) == [True, False, True, False, True]
    assert last(fz.build("realnvp", (2,)), AffineCoupling) == [False, True]  # 2-D keeps the former masks
    assert last(fz.build("realnvp", (2,), num_layers=3), AffineCoupling) == [True, False]
    assert last(fz.build("realnvp", (2,), mask_anchor="data"), AffineCoupling) == [True, False]
    assert last(fz.build("nice", (2,)), AdditiveCoupling) == [True, False]
    assert last(fz.build("nsf_coupling", (5,)), NeuralSplineCoupling) == [True, False, True, False, True]
    assert last(fz.build("nsf_coupling", (6,), mask="half"), NeuralSplineCoupling) == [True] * 3 + [False] * 3


# -- the shift side of the affine layers (defaults version 4) ---------------------------------------------
def _affine_cases(tag, wide=False, **option):
    """The four affine layers (coupling and MAF, each also conditional) with one option set, for the battery."""

    def case(name, make, dim, **kw):
        draws = {"sample_x": _wide((dim,))} if wide else {}
        return TransformCase(f"{name}-{tag}", make, (dim,), perturb=1.0 if wide else 0.5, **draws, **kw)

    return [
        case(
            "MaskedAffineAutoregressive",
            lambda: MaskedAffineAutoregressive(3, (8,), input_bound=2.0, input_squash="asinh", **option),
            3,
            autoregressive=True,
        ),
        case(
            "MaskedAffineAutoregressive-reversed",
            lambda: MaskedAffineAutoregressive(4, (8,), reverse=True, **option),
            4,
            autoregressive="reversed",
        ),
        case("AffineCoupling", lambda: AffineCoupling(half_mask(4), MLP(4, 8, (8,)), **option), 4),
        case(
            "AffineCoupling-split",
            lambda: AffineCoupling(half_mask(5, False), MLP(3, 4, (8,)), split_channels=True, **option),
            5,
        ),
        case(
            "ConditionalAffineCoupling",
            lambda: ConditionalAffineCoupling(half_mask(3), MLP(3, 6, (8,), context_features=2), (2,), **option),
            3,
            context_shape=(2,),
        ),
        case(
            "ConditionalMaskedAffineAutoregressive",
            lambda: ConditionalMaskedAffineAutoregressive(3, 2, (8,), **option),
            3,
            context_shape=(2,),
            autoregressive=True,
        ),
    ]


# the bounded shift (an option, not a default) joins the battery here too, on both sides, on wide draws
AFFINE_OPTIONS = (
    _affine_cases("latent-shift", shift_side="latent")
    + _affine_cases("shift-bound", wide=True, shift_bound=0.7)
    + _affine_cases("latent-shift-bound", wide=True, shift_side="latent", shift_bound=0.7)
)


@pytest.mark.parametrize("case", AFFINE_OPTIONS, ids=battery.tids(AFFINE_OPTIONS))
@pytest.mark.parametrize("check", TRANSFORM_CHECKS, ids=lambda f: f.__name__[5:])
def test_affine_layer_options_pass_the_transform_battery(case, check):
    check(case)


def test_latent_shift_is_added_after_the_scale_in_the_density_direction():
    torch.manual_seed(0)
    maf = MaskedAffineAutoregressive(3, (8,), shift_side="latent").double()
    coupling = AffineCoupling(half_mask(4), MLP(2, 4, (8,)), split_channels=True, shift_side="latent").double()
    for p in list(maf.parameters()) + list(coupling.parameters()):
        p.data.add_(0.5 * torch.randn_like(p))
    x = torch.randn(5, 3, dtype=torch.float64)
    shift, neg_log_scale = maf._shift_neg_log_scale(x)
    assert torch.allclose(maf.inv(x), x * neg_log_scale.exp() - shift)
    y = torch.randn(5, 4, dtype=torch.float64)
    shift, raw = coupling.net(y[:, :2]).chunk(2, -1)
    log_scale = coupling._log_scale(raw)
    assert torch.allclose(coupling.inv(y), torch.cat([y[:, :2], y[:, 2:] * (-log_scale).exp() - shift], -1))


def test_shift_side_defaults_by_builder_and_dimension():
    from pyro_flowzoo.infer.amortized import ENCODER_DEFAULTS
    from pyro_flowzoo.infer.autoguide import GUIDE_DEFAULTS

    def sides(name, shape, **kw):
        return {t.shift_side for t in fz.build(name, shape, **kw).transforms if hasattr(t, "shift_side")}

    for name in ("maf", "realnvp"):
        assert sides(name, (2,)) == {"data"}
        assert sides(name, (3,)) == sides(name, (6,)) == {"latent"}
        assert sides(name, (6,), shift_side="data") == sides(name, (4,), context_shape=(2,)) == {"data"}
        assert sides(name, (4,), context_shape=(2,), shift_side="latent") == {"latent"}
        assert GUIDE_DEFAULTS[name]["shift_side"] == ENCODER_DEFAULTS[name]["shift_side"] == "data"
        with pytest.raises(ValueError, match="shift_side must be one of"):
            fz.build(name, (4,), shift_side="middle")
    assert sides("realnvp", (1, 4, 4), num_scales=1, num_blocks=1, hidden_channels=4) == {"data"}
    with pytest.raises(TypeError, match="does not take"):
        fz.build("realnvp", (1, 4, 4), shift_side="latent")


@pytest.mark.parametrize(
    "name, shape, context",
    [("maf", (4,), None), ("realnvp", (5,), None), ("maf", (3,), (2,)), ("realnvp", (3,), (2,))],
)
def test_version_3_checkpoints_keep_the_data_side_shift(name, shape, context, tmp_path):
    """Up to defaults version 3 the affine layers shifted on the data side: such a checkpoint comes back so, with
    the same density. Read as today's, an unconditional one (today: latent side) is refused, twice; a conditional
    one (still the data side) loads."""
    from pyro_flowzoo.checkpoint import checkpoint_payload, flow_from_checkpoint, save_checkpoint

    extra = {} if context is None else {"context_shape": context}
    flow = fz.build(name, shape, hidden_dims=(8,), num_layers=2, shift_side="data", **extra)
    x = 2 * torch.randn(16, *shape)
    kw = {} if context is None else {"context": torch.randn(16, *context)}
    flow.log_prob(x, **kw)  # the first batch sets the standardization
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))
    expected = flow.log_prob(x, **kw)
    payload = checkpoint_payload(flow)
    payload["hparams"] = {k: v for k, v in payload["hparams"].items() if k != "shift_side"}
    payload["defaults"] = 3
    save_checkpoint(tmp_path / "v3.pt", payload)
    again, _ = flow_from_checkpoint(tmp_path / "v3.pt")
    assert torch.allclose(again.log_prob(x, **kw), expected, atol=1e-5)
    payload["defaults"] = fz.checkpoint.DEFAULTS_VERSION
    if context is not None:
        today, _ = flow_from_checkpoint(payload)
        assert torch.allclose(today.log_prob(x, **kw), expected, atol=1e-5)
    else:
        with pytest.raises(fz.checkpoint.CheckpointError, match="adds its shift on the data side, this one on the"):
            flow_from_checkpoint(payload)
    latent = fz.build(name, shape, hidden_dims=(8,), num_layers=2, shift_side="latent", **extra)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="latent_shift: the saved layer adds its shift on the data side"):
            latent.load_state_dict(flow.state_dict())
    with pytest.raises(RuntimeError, match="adds its shift on the latent side, this one on the data side"):
        flow.load_state_dict(latent.state_dict())


def test_resuming_a_version_3_run_names_the_shift_side(tmp_path):
    from pyro_flowzoo.checkpoint import load_checkpoint, save_checkpoint
    from pyro_flowzoo.train import fit

    data = torch.randn(64, 4)
    kw = dict(steps=2, batch_size=32, seed=0, progress=False)
    former = dict(shift_side="data", num_layers=5)  # version 3's defaults for maf at D >= 3
    fit(fz.build("maf", (4,), hidden_dims=(8,), **former), data, checkpoint=tmp_path / "run.pt", **kw)
    payload = load_checkpoint(tmp_path / "run.pt")
    payload["hparams"] = {k: v for k, v in payload["hparams"].items() if k not in former}
    payload["defaults"] = 3
    save_checkpoint(tmp_path / "old.pt", payload)
    with pytest.raises(fz.checkpoint.CheckpointError, match="with shift_side='data', num_layers=5 to resume"):
        fit(fz.build("maf", (4,), hidden_dims=(8,)), data, resume=tmp_path / "old.pt", **{**kw, "steps": 4})
    resumed = fz.build("maf", (4,), hidden_dims=(8,), **former)
    assert fit(resumed, data, resume=tmp_path / "old.pt", **{**kw, "steps": 4}).steps == 4


def test_partial_state_dicts_load_into_latent_layers_without_strict():
    """strict=False with some layers' keys only: the layers without keys are not judged to be of the data side."""
    flow = fz.build("maf", (4,), num_layers=2, hidden_dims=(8,))
    assert flow.load_state_dict({}, strict=False).missing_keys
    part = {k: v for k, v in flow.state_dict().items() if k.startswith("transforms.1.")}
    result = flow.load_state_dict(part, strict=False)
    assert "transforms.0.latent_shift" in result.missing_keys and "transforms.1.latent_shift" not in result.missing_keys


def test_resuming_takes_the_named_arguments_however_spelled(tmp_path):
    """The advice names lists (as checkpoints store them); tuples are the same arguments. A run saved with
    explicit None hyper-parameters had the former defaults: the advice names them too."""
    from pyro_flowzoo.checkpoint import load_checkpoint, save_checkpoint
    from pyro_flowzoo.train import fit

    data = torch.randn(64, 4)
    kw = dict(steps=2, batch_size=32, seed=0, progress=False)
    former = dict(shift_side="data", num_layers=5, hidden_dims=(32, 32))
    fit(fz.build("maf", (4,), **former), data, checkpoint=tmp_path / "run.pt", **kw)
    payload = load_checkpoint(tmp_path / "run.pt")
    payload["hparams"] = {**payload["hparams"], "num_layers": None, "hidden_dims": None}
    del payload["hparams"]["shift_side"]
    payload["defaults"] = 3
    save_checkpoint(tmp_path / "old.pt", payload)
    advice = "with shift_side='data', num_layers=5, hidden_dims=[32, 32] to resume"
    with pytest.raises(fz.checkpoint.CheckpointError, match=re.escape(advice)):
        fit(fz.build("maf", (4,), num_layers=None, hidden_dims=None), data, resume=tmp_path / "old.pt", **kw)
    assert fit(fz.build("maf", (4,), **former), data, resume=tmp_path / "old.pt", **{**kw, "steps": 4}).steps == 4


# -- the splines' affine layer (defaults version 5) ---------------------------------------------------------
@pytest.mark.parametrize("name", ["nsf_ar", "nsf_coupling"])
def test_spline_builders_put_an_affine_layer_in_front_for_unconditional_d_above_two(name):
    from pyro_flowzoo.infer.amortized import ENCODER_DEFAULTS
    from pyro_flowzoo.infer.autoguide import GUIDE_DEFAULTS

    def affine(flow):
        return [(i, t.shift_side) for i, t in enumerate(flow.transforms) if isinstance(t, MaskedAffineAutoregressive)]

    flow = fz.build(name, (6,))
    assert affine(flow) == [(len(flow.transforms) - 2, "latent")]  # just before the data-side standardization
    assert affine(fz.build(name, (2,))) == affine(fz.build(name, (6,), affine_layer=False)) == []
    assert affine(fz.build(name, (4,), context_shape=(2,))) == []
    assert len(affine(fz.build(name, (2,), affine_layer=True))) == 1
    with pytest.raises(ValueError, match="affine_layer=True needs an unconditional flow"):
        fz.build(name, (4,), context_shape=(2,), affine_layer=True)
    assert GUIDE_DEFAULTS[name]["affine_layer"] is False and ENCODER_DEFAULTS[name]["affine_layer"] is False


def _reloaded_as_version(flow, x, version, drop, path, scale=0.1):
    """Saves ``flow`` (moved off its start) as a checkpoint of defaults ``version`` whose hyper-parameters lack
    ``drop``, checks it rebuilds with the same density and returns ``(payload, rebuilt flow)``."""
    from pyro_flowzoo.checkpoint import checkpoint_payload, flow_from_checkpoint, save_checkpoint

    flow.log_prob(x)  # the first batch sets the standardization
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    expected = flow.log_prob(x)
    payload = checkpoint_payload(flow)
    payload["hparams"] = {k: v for k, v in payload["hparams"].items() if k not in drop}
    payload["defaults"] = version
    save_checkpoint(path, payload)
    again, _ = flow_from_checkpoint(path)
    assert torch.allclose(again.log_prob(x), expected, atol=1e-5)
    return payload, again


@pytest.mark.parametrize("name, shape", [("nsf_ar", (4,)), ("nsf_coupling", (5,))])
def test_version_4_spline_checkpoints_come_back_without_the_affine_layer(name, shape, tmp_path):
    flow = fz.build(name, shape, hidden_dims=(8,), affine_layer=False)
    payload, _ = _reloaded_as_version(flow, 2 * torch.randn(16, *shape), 4, ("affine_layer",), tmp_path / "v4.pt")
    payload["defaults"] = fz.checkpoint.DEFAULTS_VERSION
    with pytest.raises(fz.checkpoint.CheckpointError):
        fz.checkpoint.flow_from_checkpoint(payload)  # today's flow has one layer more


# -- the bounded shift (an option, not a default) ----------------------------------------------------------
@pytest.mark.parametrize("side", ["data", "latent"])
def test_a_bounded_shift_is_b_tanh_t_over_b_in_both_directions(side):
    torch.manual_seed(0)
    b = 0.7
    maf = MaskedAffineAutoregressive(3, (8,), shift_side=side, shift_bound=b).double()
    coupling = AffineCoupling(half_mask(4), MLP(2, 4, (8,)), split_channels=True, shift_side=side, shift_bound=b)
    coupling = coupling.double()
    for p in list(maf.parameters()) + list(coupling.parameters()):
        p.data.add_(3.0 * torch.randn_like(p))  # raw shifts far beyond the bound
    x = 4 * torch.randn(64, 3, dtype=torch.float64)
    raw_shift, raw = maf.made(x).unbind(-2)
    assert raw_shift.abs().max() > 3 * b
    shift, neg_log_scale = maf._shift_neg_log_scale(x)
    assert torch.allclose(shift, b * torch.tanh(raw_shift / b)) and shift.abs().max() <= b
    expected = (x - shift) * neg_log_scale.exp() if side == "data" else x * neg_log_scale.exp() - shift
    assert torch.allclose(maf.inv(x), expected)
    y = 4 * torch.randn(64, 4, dtype=torch.float64)
    raw_shift, raw = coupling.net(y[:, :2]).chunk(2, -1)
    shift, factor = b * torch.tanh(raw_shift / b), (-coupling._log_scale(raw)).exp()
    changed = (y[:, 2:] - shift) * factor if side == "data" else y[:, 2:] * factor - shift
    assert torch.allclose(coupling.inv(y), torch.cat([y[:, :2], changed], -1))
    for t, v in ((maf, x), (coupling, y)):
        assert torch.allclose(t(t.inv(v)), v, atol=1e-9)


def test_builders_bound_shifts_only_when_asked():
    def bounds(name, shape, **kw):
        return {t.shift_bound for t in fz.build(name, shape, **kw).transforms if hasattr(t, "shift_side")}

    for name in ("realnvp", "maf"):
        assert bounds(name, (2,)) == bounds(name, (5,)) == bounds(name, (3,), context_shape=(2,)) == {None}
        assert bounds(name, (2,), shift_bound=False) == bounds(name, (2,), shift_bound=0) == {None}
        assert bounds(name, (2,), shift_bound=1.5) == bounds(name, (4,), context_shape=(2,), shift_bound=1.5) == {1.5}
        for bad in (-1.0, math.inf, math.nan, True, "wide"):
            with pytest.raises(ValueError, match="shift_bound must be a finite number > 0, or None / False"):
                fz.build(name, (2,), shift_bound=bad)
    for bad in (0.0, -2.0, math.inf, False):
        with pytest.raises(ValueError, match="shift_bound must be a finite number > 0"):
            AffineCoupling(half_mask(2), MLP(2, 4, (8,)), shift_bound=bad)
    with pytest.raises(ValueError, match="shift_bound is for affine couplings only"):
        fz.transforms.coupling._Coupling._init_coupling(
            AdditiveCoupling(half_mask(2), MLP(2, 2, (8,))), half_mask(2), MLP(2, 2, (8,)), None, False, shift_bound=1.0
        )
    with pytest.raises(TypeError, match="does not take"):
        fz.build("realnvp", (1, 4, 4), shift_bound=1.5)


@pytest.mark.parametrize("name", ["realnvp", "maf"])
def test_a_state_dict_with_another_shift_bound_is_refused(name, tmp_path):
    """The bound changes the density computed by the same weights: loads across bounds are refused, twice;
    checkpoints rebuild with their bound; float64 layers load float32 bounds."""
    from pyro_flowzoo.checkpoint import checkpoint_payload, flow_from_checkpoint, save_checkpoint

    kw = dict(hidden_dims=(8,), num_layers=3)
    bounded, free = fz.build(name, (2,), shift_bound=1.5, **kw), fz.build(name, (2,), **kw)
    x = 3 * torch.randn(16, 2)
    bounded.log_prob(x)
    with torch.no_grad():
        for p in bounded.parameters():
            p.add_(0.5 * torch.randn_like(p))
    for _ in range(2):
        with pytest.raises(
            RuntimeError,
            match=r"shift_bound_value: the saved layer bounds its shift by 1.5, this one is unbounded \(build it with",
        ):
            free.load_state_dict(bounded.state_dict())
    with pytest.raises(RuntimeError, match=r"the saved layer is unbounded, this one bounds its shift by 1.5"):
        bounded.load_state_dict(free.state_dict())
    with pytest.raises(RuntimeError, match=r"bounds its shift by 1.5, this one bounds its shift by 3.0"):
        fz.build(name, (2,), shift_bound=3.0, **kw).load_state_dict(bounded.state_dict())
    twin = fz.build(name, (2,), shift_bound=1.5, **kw).double()
    twin.load_state_dict(bounded.state_dict())
    assert torch.allclose(twin.log_prob(x.double()).float(), bounded.log_prob(x), atol=1e-5)
    save_checkpoint(tmp_path / "b.pt", checkpoint_payload(bounded))
    again, _ = flow_from_checkpoint(tmp_path / "b.pt")
    assert torch.allclose(again.log_prob(x), bounded.log_prob(x), atol=1e-6)


# -- the Student-t base of 2-D realnvp and maf (defaults version 6) -----------------------------------------
def test_student_t_base_is_pyros_student_t():
    from pyro_flowzoo.flow import StandardStudentT

    base = StandardStudentT((3,), df=4.0).double()
    assert base.df.dtype == torch.float64 and "df" in base.state_dict()
    z = 5 * torch.randn(7, 3, dtype=torch.float64)
    expected = torch.distributions.StudentT(4.0, 0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(base.log_prob(z), expected) and torch.allclose(base.dist().log_prob(z), expected)
    torch.manual_seed(0)
    draws = base.sample((20000,))
    assert draws.shape == (20000, 3) and draws.dtype == torch.float64
    # Student-t(4): P(|t| > 4.604) = 0.01 (the 0.995 quantile); a normal would give 4e-6
    assert 0.007 < (draws.abs() > 4.604).double().mean() < 0.013
    assert 0.007 < (base.sample(20000, temperature=0.5).abs() > 2.302).double().mean() < 0.013  # scaled by 0.5
    for bad in (0.0, -1.0, math.inf, True):
        with pytest.raises(ValueError, match="StandardStudentT needs a finite df > 0"):
            StandardStudentT((2,), df=bad)


def test_2d_realnvp_and_maf_default_to_a_student_t_base():
    from pyro_flowzoo.flow import StandardNormal, StandardStudentT

    def base(name, shape, **kw):
        b = fz.build(name, shape, **kw).base
        return (type(b).__name__, float(b.df)) if isinstance(b, StandardStudentT) else type(b).__name__

    for name in ("realnvp", "maf"):
        assert base(name, (2,)) == ("StandardStudentT", 10.0)
        assert base(name, (3,)) == base(name, (2,), context_shape=(2,)) == "StandardNormal"
        assert base(name, (2,), base_df=False) == base(name, (2,), base_df=math.inf) == "StandardNormal"
        assert (
            base(name, (6,), base_df=3) == base(name, (2,), context_shape=(1,), base_df=3) == ("StandardStudentT", 3.0)
        )
        for bad in (0, -2.0, True, "heavy"):
            with pytest.raises(ValueError, match="base_df must be a number > 0, or False / inf"):
                fz.build(name, (2,), base_df=bad)
    for name in ("nsf_ar", "nsf_coupling", "nice", "ar_flow"):
        assert not isinstance(fz.build(name, (2,)).base, StandardStudentT)
    assert isinstance(
        fz.build("realnvp", (1, 4, 4), num_scales=1, num_blocks=1, hidden_channels=4).base, StandardNormal
    )
    with pytest.raises(TypeError, match="does not take"):
        fz.build("realnvp", (1, 4, 4), base_df=5.0)


def test_a_conditional_flow_takes_a_student_t_base():
    flow = fz.build("maf", (2,), context_shape=(3,), hidden_dims=(8,), num_layers=2, base_df=4.0)
    c = torch.randn(5, 3)
    assert flow.sample((7,), context=c).shape == (7, 5, 2)
    assert flow.dist.condition(c).sample((7,)).shape == (7, 5, 2)
    x = torch.randn(5, 2)
    assert torch.allclose(flow.dist.condition(c).log_prob(x), flow.log_prob(x, context=c), atol=1e-5)


@pytest.mark.parametrize("name", ["realnvp", "maf"])
def test_version_5_checkpoints_of_2d_flows_keep_their_normal_base(name, tmp_path):
    """Up to defaults version 5, 2-D realnvp and maf had a normal base: such a checkpoint comes back so, with the
    same density; read as today's it is refused rather than scored under another base."""
    from pyro_flowzoo.flow import StandardNormal

    flow = fz.build(name, (2,), hidden_dims=(8,), num_layers=3, base_df=False)
    payload, again = _reloaded_as_version(flow, 3 * torch.randn(16, 2), 5, ("base_df",), tmp_path / "v5.pt", 0.3)
    assert isinstance(again.base, StandardNormal)
    payload["defaults"] = fz.checkpoint.DEFAULTS_VERSION
    with pytest.raises(fz.checkpoint.CheckpointError, match="base.df: the saved flow has no Student-t base"):
        fz.checkpoint.flow_from_checkpoint(payload)
    t_flow = fz.build(name, (2,), hidden_dims=(8,), num_layers=3)
    with pytest.raises(RuntimeError, match=r"base.df: the saved flow has a Student-t base, this one a StandardNormal"):
        flow.load_state_dict(t_flow.state_dict())


@pytest.mark.parametrize("name, shape", [("nsf_ar", (4,)), ("nsf_coupling", (5,))])
def test_version_5_spline_checkpoints_keep_the_affine_layer(name, shape, tmp_path):
    """Version 5 added the splines' affine layer; version 6 changed only 2-D bases: a version-5 checkpoint of
    a spline flow at D >= 3 rebuilds with its layer and density."""
    flow = fz.build(name, shape, hidden_dims=(8,))
    _, again = _reloaded_as_version(flow, 2 * torch.randn(16, *shape), 5, (), tmp_path / "v5.pt")
    assert sum(isinstance(t, MaskedAffineAutoregressive) for t in again.transforms) == 1


def test_a_meta_bound_in_a_state_dict_is_not_taken_for_a_match():
    """A saved bound that cannot be read (meta tensors) still says the saved layer was bounded."""
    bounded = MaskedAffineAutoregressive(3, (8,), shift_bound=1.5)
    state = {k: torch.empty_like(v, device="meta") for k, v in bounded.state_dict().items()}
    with pytest.raises(RuntimeError, match="bounds its shift by nan, this one is unbounded"):
        MaskedAffineAutoregressive(3, (8,)).load_state_dict(state, strict=False)
