"""Glow under ``torch.compile``: no graph breaks, the same log-density and gradients as eager.

``backend="aot_eager"`` traces forward and backward through AOTAutograd without generating code, so the
checks run in seconds on a CPU; the GPU benchmark (``benchmarks/glow_gpu.py``) compiles the same regions
with inductor. ``fullgraph=True`` turns any graph break into an error.
"""

from __future__ import annotations

import pytest
import torch

import pyro_flowzoo as fz
from pyro_flowzoo.transforms import ActNorm, AffineCoupling, InvertibleConv1x1

dynamo = pytest.importorskip("torch._dynamo")
testing = pytest.importorskip("torch._dynamo.testing")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    # Dynamo's first compilation switches torch.distributions' argument validation off for the whole process
    # (torch._dynamo.eval_frame.TorchPatcher); later tests rely on Pyro's support checks, so put it back.
    validate = torch.distributions.Distribution._validate_args
    dynamo.reset()
    yield
    dynamo.reset()
    torch.distributions.Distribution.set_default_validate_args(validate)


def _tiny_glow(steps: int = 1) -> tuple[fz.Flow, torch.Tensor]:
    flow = fz.build("glow", (3, 8, 8), levels=2, steps=steps, hidden_channels=8, logit_alpha=None)
    flow.validate = False  # the NaN check reads a tensor on the host: a graph break by design
    for m in flow.modules():  # a non-zero last layer, so the couplings are not the identity
        if isinstance(m, fz.nn.ZeroConv2d):
            torch.nn.init.normal_(m.conv.weight, std=0.05)
    x = torch.rand(4, 3, 8, 8) - 0.5
    with torch.no_grad():
        flow.log_prob(x)  # ActNorm's data-dependent initialisation runs eagerly, before compiling
    return flow, x


def _grads(flow: fz.Flow, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(flow.parameters())))


def test_glow_log_prob_compiles_as_one_graph_with_eager_values_and_gradients():
    flow, x = _tiny_glow()
    counter = testing.CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(flow.log_prob, backend=counter, fullgraph=True)
    eager_lp, compiled_lp = flow.log_prob(x), compiled(x)
    assert counter.frame_count == 1
    torch.testing.assert_close(compiled_lp, eager_lp, rtol=0, atol=1e-5)
    for g_eager, g_compiled in zip(_grads(flow, eager_lp.mean()), _grads(flow, compiled_lp.mean())):
        torch.testing.assert_close(g_compiled, g_eager, rtol=1e-5, atol=1e-5)


def test_glow_log_prob_compiles_without_gradients():
    # Without gradients InvertibleConv1x1 caches W keyed on data pointers; traced, it rebuilds W instead.
    flow, x = _tiny_glow()
    with torch.no_grad():
        eager_lp = flow.log_prob(x)
        compiled_lp = torch.compile(flow.log_prob, backend="aot_eager", fullgraph=True)(x)
    torch.testing.assert_close(compiled_lp, eager_lp, rtol=0, atol=1e-5)


def test_one_compiled_flow_step_serves_every_step_of_the_same_shape():
    flow, x = _tiny_glow(steps=2)
    steps = [
        [t for t in m.children() if isinstance(t, (ActNorm, InvertibleConv1x1, AffineCoupling))]
        for m in [flow.transforms, *[f.inner for f in flow.modules() if isinstance(f, fz.transforms.FactorOut)]]
    ]
    # Latent -> data lists hold each step as (coupling, 1x1 conv, ActNorm); take the outer level's two steps.
    outer = steps[0]
    triples = [(outer[i + 2], outer[i + 1], outer[i]) for i in range(0, len(outer), 3)]
    assert len(triples) == 2 and all(isinstance(t[0], ActNorm) for t in triples)

    def step(actnorm, conv, coupling, y):
        y, a = actnorm.inverse_and_log_det(y)
        y, b = conv.inverse_and_log_det(y)
        y, c = coupling.inverse_and_log_det(y)
        return y, a + b + c

    counter = testing.CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(step, backend=counter, fullgraph=True, dynamic=False)
    y = torch.randn(4, 12, 4, 4, requires_grad=True)
    for modules in triples:
        (z, ld), (z_ref, ld_ref) = compiled(*modules, y), step(*modules, y)
        torch.testing.assert_close(z, z_ref, rtol=0, atol=1e-5)
        torch.testing.assert_close(ld, ld_ref, rtol=0, atol=1e-5)
        params = [p for m in modules for p in m.parameters()]
        g = torch.autograd.grad((z.square().sum() + ld.sum()), [y, *params])
        g_ref = torch.autograd.grad((z_ref.square().sum() + ld_ref.sum()), [y, *params])
        for a, b in zip(g, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert counter.frame_count == 1  # the second step reused the first one's graph


# ---- every vector builder: one graph for log_prob, sample and rsample_and_log_prob -----------------------
VECTOR_BUILDERS = fz.flows.builders("vector")
_TINY = {
    "nice": {"hidden_dims": (8,)},
    "realnvp": {"num_layers": 2, "hidden_dims": (8,)},
    "maf": {"num_layers": 2, "hidden_dims": (8,)},
    "nsf_ar": {"num_layers": 1, "hidden_dims": (8,), "num_bins": 4},
    "nsf_coupling": {"num_layers": 2, "hidden_dims": (8,), "num_bins": 4},
    "ar_flow": {"num_components": 3, "hidden_dims": (8,)},
    "planar": {"num_layers": 2},
    "radial": {"num_layers": 2},
}


@pytest.mark.parametrize("name", VECTOR_BUILDERS)
def test_vector_builder_compiles_fullgraph_without_recompiles(name):
    torch.manual_seed(0)
    flow = fz.build(name, (2,), **_TINY[name]).double()
    with torch.no_grad():
        for p in flow.parameters():  # away from the identity, so the check is not vacuous
            p.add_(0.05 * torch.randn_like(p))
        flow.log_prob(torch.randn(16, 2, dtype=torch.float64))  # data-dependent init runs eagerly first
    counter = testing.CompileCounterWithBackend("aot_eager")
    log_prob = torch.compile(flow.log_prob, backend=counter, fullgraph=True, dynamic=True)
    frames = []
    for n in (8, 5, 11):  # other batch sizes reuse the first compilation
        x = torch.randn(n, 2, dtype=torch.float64)
        torch.testing.assert_close(log_prob(x), flow.log_prob(x), rtol=1e-7, atol=1e-7)
        frames.append(counter.frame_count)
    assert frames[0] >= 1 and frames[1:] == frames[:1] * 2
    x, lp = torch.compile(flow.rsample_and_log_prob, backend="aot_eager", fullgraph=True)((4,))
    assert x.shape == (4, 2) and bool(torch.isfinite(lp).all())
    torch.testing.assert_close(lp, flow.log_prob(x), rtol=1e-6, atol=1e-6)  # the sample's exact density
    assert torch.compile(flow.sample, backend="aot_eager", fullgraph=True)((3,)).shape == (3, 2)


def test_fit_compile_trains_like_eager_and_reports_the_compile_time():
    x = fz.data.sample_moons(128, generator=torch.Generator().manual_seed(0)).double()
    out = {}
    for compiled in (False, True):
        torch.manual_seed(1)
        flow = fz.build("realnvp", (2,), num_layers=2, hidden_dims=(8,)).double()
        res = fz.fit(flow, x, steps=4, batch_size=32, seed=0, compile=compiled)
        out[compiled] = (torch.cat([p.detach().flatten() for p in flow.parameters()]), res)
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-9, atol=1e-9)
    assert out[True][1].compile_time > 0 and out[False][1].compile_time == 0


@pytest.mark.parametrize("name", ["realnvp", "maf"])
def test_compiled_before_any_eager_call_initialises_on_the_first_batch_as_eager_does(name):
    # The data-side ActNorm sets itself from the first batch it scores. Compiled from the first call, that
    # initialisation is traced (a select on the `initialized` buffer), so eager and compiled loops agree.
    x = 3 + 2 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = {}
    for compiled in (False, True):
        torch.manual_seed(1)
        flow = fz.build(name, (2,), **_TINY[name]).double()
        counter = testing.CompileCounterWithBackend("aot_eager")
        log_prob = torch.compile(flow.log_prob, backend=counter, fullgraph=True, dynamic=True)
        lp = log_prob if compiled else flow.log_prob
        first = lp(x[:40])
        frames = counter.frame_count
        out[compiled] = (first, lp(x[40:]), flow.state_dict(), counter.frame_count - frames)
    eager, comp = out[False], out[True]
    torch.testing.assert_close(comp[0], eager[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(comp[1], eager[1], rtol=1e-12, atol=1e-12)
    for key, value in eager[2].items():
        torch.testing.assert_close(comp[2][key], value, rtol=0, atol=0)
    assert bool(comp[2][f"transforms.{len(flow.transforms) - 1}.initialized"]) is True
    assert comp[3] == 0  # the second batch reuses the first one's compilation: no recompile after the init
