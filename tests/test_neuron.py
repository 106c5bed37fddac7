"""The multi-level IF neuron, float and integer forms (SPEC §2, §3; seed 000 Fig. 2, eqs. 1–4)."""

import math

import numpy as np
import pytest
import torch

from golden.neuron import MultiLevelIF, multilevel_if


def _constant_sweep(levels, timesteps, threshold, xs, dtype=torch.float64):
    """Σ_t z(t) for a constant input x held for T timesteps, one neuron per x."""
    neuron = MultiLevelIF(levels=levels, threshold=threshold)
    x = torch.as_tensor(xs, dtype=dtype).expand(timesteps, len(xs))
    z = neuron(x, return_levels=True)
    return z.sum(0)


# -- quantization function (seed 000 §4.2, Fig. 2) ---------------------------------------------

@pytest.mark.parametrize("levels,timesteps", [(1, 1), (1, 4), (2, 1), (2, 3), (3, 5), (4, 1),
                                              (4, 2), (8, 2), (5, 4)])
def test_constant_input_has_NT_plus_1_levels(levels, timesteps):
    vth = 1.0
    xs = np.linspace(0.0, 1.2 * vth, 6001)
    total = _constant_sweep(levels, timesteps, vth, xs)
    assert sorted(set(total.long().tolist())) == list(range(levels * timesteps + 1))
    # Monotonic staircase, saturating at x = V_th.
    assert bool((total[1:] >= total[:-1]).all())
    assert bool((total[torch.as_tensor(xs) >= vth] == levels * timesteps).all())
    assert bool((total[torch.as_tensor(xs) < vth] < levels * timesteps).all())


def test_fig2_staircase_T2_N4():
    # Seed 000, Fig. 2: T = 2, N = 4, V_th = 1. Decoded x̂ = Σ z / (N·T) = min(1, floor(8x)/8).
    ks = list(range(0, 21))
    xs = [k / 16 for k in ks]                      # exact dyadic inputs, up to 1.25
    total = _constant_sweep(4, 2, 1.0, xs).long().tolist()
    assert total == [min(8, k // 2) for k in ks]
    assert len(set(total)) == 9
    assert total[16] == 8                           # x = V_th saturates
    assert total[15] == 7                           # just below V_th does not
    # The float output carries z·θ: its mean over T is the decoded value x̂·V_th.
    neuron = MultiLevelIF(levels=4, threshold=1.0)
    out = neuron(torch.tensor(xs, dtype=torch.float64).expand(2, len(xs)))
    assert out.mean(0).tolist() == [min(8, k // 2) / 8 for k in ks]


def test_fig2_per_timestep_values():
    neuron = MultiLevelIF(levels=4, threshold=1.0)
    # x = 0.375: H1 = 0.375 -> z1 = 1, P1 = 0.125; H2 = 0.5 -> z2 = 2, P2 = 0.
    z = neuron(torch.full((2, 1), 0.375), return_levels=True)
    assert z.flatten().tolist() == [1.0, 2.0]


def test_fires_at_equality_even_with_inexact_theta():
    # θ = 0.1 is not a binary fraction; H = k·θ must still fire exactly k.
    neuron = MultiLevelIF(levels=10, threshold=1.0)
    for dtype in (torch.float32, torch.float64):
        k = torch.arange(0, 11, dtype=dtype)
        h = k * neuron.theta
        z = neuron(h[None], return_levels=True)[0]
        assert z.tolist() == k.tolist()
        below = torch.nextafter(h, torch.full_like(h, -1.0))
        z = neuron(below[None], return_levels=True)[0]
        assert z.tolist() == [0.0] + (k[1:] - 1).tolist()


# -- N = 1 is the binary IF neuron of seed 000, eqs. 1–4 -----------------------------------------

def _binary_if(inputs, vth):
    """Seed 000 eqs. 1–4 written out: H = V + i; z = Θ(H − V_th); V = H(1 − z) + (H − V_th)z.

    Θ(0) = 1: the neuron fires at equality (pinned by SPEC §2).
    """
    v = np.zeros(inputs.shape[1:])
    zs = []
    for i in inputs:
        h = v + i
        z = (h - vth >= 0).astype(np.float64)
        v = h * (1 - z) + (h - vth) * z
        zs.append(z)
    return np.stack(zs)


def test_levels_1_is_binary_if():
    rng = np.random.default_rng(1)
    inputs = rng.uniform(-0.5, 1.5, size=(8, 500))
    inputs[:, :50] = 0.5                            # equality cases: H hits V_th exactly
    expected = _binary_if(inputs, 1.5)
    neuron = MultiLevelIF(levels=1, threshold=1.5)
    z = neuron(torch.from_numpy(inputs), return_levels=True).numpy()
    assert np.array_equal(z, expected)
    # And the integer form, on integer currents.
    icur = rng.integers(-3, 7, size=(8, 500))
    zi, _ = multilevel_if(icur, threshold=4, levels=1)
    assert np.array_equal(zi.numpy(), _binary_if(icur.astype(np.float64), 4.0).astype(np.int64))


# -- integer form --------------------------------------------------------------------------------

def test_integer_form_soft_reset_and_clear():
    cur = torch.tensor([[5, 12, -3, 0], [1, 12, 2, 3], [7, 0, 9, 4]], dtype=torch.int32)
    z, final, pots = multilevel_if(cur, threshold=3, levels=2, v0=1, return_potentials=True)
    assert z.dtype == torch.int64 and final.dtype == torch.int64
    # Column 0: H = 6 -> z 2, P 0; H = 1 -> 0, P 1; H = 8 -> 2, P 2.
    # Column 1: H = 13 -> 2 (saturates), P 7; H = 19 -> 2, P 13; H = 13 -> 2, P 7.
    # Column 2: H = -2 -> 0, P -2; H = 0 -> 0, P 0; H = 9 -> 2, P 3.
    # Column 3: H = 1 -> 0, P 1; H = 4 -> 1, P 1; H = 5 -> 1, P 2.
    assert z.tolist() == [[2, 2, 0, 0], [0, 2, 0, 1], [2, 2, 2, 1]]
    assert pots.tolist() == [[0, 7, -2, 1], [1, 13, 0, 1], [2, 7, 3, 2]]
    assert final.tolist() == [1, 1, 1, 1]


def test_integer_form_matches_closed_form_for_constant_input():
    # With a constant non-negative current and v0 = 0, Σ z = min(N·T, floor(T·I / θ)).
    for theta, levels, timesteps in [(1, 1, 3), (3, 4, 2), (5, 2, 7), (16, 8, 4)]:
        i = torch.arange(0, levels * theta + 2 * theta)
        z, _ = multilevel_if(i.expand(timesteps, -1), theta, levels)
        expected = torch.clamp(torch.div(timesteps * i, theta, rounding_mode="floor"),
                               max=levels * timesteps)
        assert torch.equal(z.sum(0), expected)


def test_integer_form_is_pure():
    cur = torch.randint(-10, 30, (5, 7, 3), generator=torch.Generator().manual_seed(0))
    a = multilevel_if(cur, 4, 3, v0=2)
    b = multilevel_if(cur.clone(), 4, 3, v0=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert multilevel_if(cur.numpy(), 4, 3, v0=2)[0].tolist() == a[0].tolist()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_and_integer_forms_agree(dtype):
    rng = np.random.default_rng(7)
    scale = 2.0 ** -4
    for theta_int, levels in [(1, 1), (2, 4), (3, 2), (5, 7), (8, 3)]:
        for v0_int in (0, theta_int // 2, -1):
            cur = rng.integers(-8, 3 * theta_int * levels, size=(6, 40))
            z_int, _ = multilevel_if(cur, theta_int, levels, v0=v0_int)
            neuron = MultiLevelIF(levels=levels, threshold=levels * theta_int * scale,
                                  v0=v0_int * scale)
            x = torch.as_tensor(cur * scale, dtype=dtype)
            z = neuron(x, return_levels=True)
            assert torch.equal(z.long(), z_int)
            out = neuron(x)
            assert torch.equal(out, z_int.to(dtype) * (theta_int * scale))


def test_float_module_is_stateless():
    neuron = MultiLevelIF(levels=3, threshold=1.0, v0=0.2)
    x = torch.rand(4, 3, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(neuron(x), neuron(x))
    assert neuron(x).shape == x.shape


# -- gradients -------------------------------------------------------------------------------------

def _grad_wrt_input(neuron, h, return_levels):
    x = h.clone()[None].requires_grad_(True)
    neuron(x, return_levels=return_levels).sum().backward()
    return x.grad[0]


def _sigmoid_surrogate(h, theta, levels, alpha):
    return sum(alpha * torch.sigmoid(alpha * (h - k * theta))
               * (1 - torch.sigmoid(alpha * (h - k * theta))) for k in range(1, levels + 1))


@pytest.mark.parametrize("levels,threshold,alpha", [(4, 4.0, 5.0), (4, 1.0, 40.0), (2, 1.0, 20.0),
                                                    (1, 1.0, 5.0)])
def test_surrogate_gradient_peaks_at_micro_thresholds(levels, threshold, alpha):
    neuron = MultiLevelIF(levels=levels, threshold=threshold, alpha=alpha)
    theta = neuron.theta
    step = theta / 1000
    h = torch.arange(-theta, (levels + 1) * theta + step / 2, step, dtype=torch.float64)
    g = _grad_wrt_input(neuron, h, return_levels=True)
    assert torch.allclose(g, _sigmoid_surrogate(h, theta, levels, alpha), rtol=1e-12, atol=0)
    # Local maxima of ∂z/∂H sit at H = kθ, k = 1..N (within a few grid steps: the tails of
    # neighbouring thresholds pull the peaks slightly inwards).
    inner = (g[1:-1] > g[:-2]) & (g[1:-1] >= g[2:])
    peaks = h[1:-1][inner]
    assert len(peaks) == levels
    for k, p in enumerate(peaks.tolist(), start=1):
        assert abs(p - k * theta) <= 0.02 * theta
    # The float output z·θ has the same surrogate, scaled by θ.
    gv = _grad_wrt_input(neuron, h, return_levels=False)
    assert torch.allclose(gv, g * theta, rtol=1e-12, atol=0)


def test_ste_gradient_is_exactly_one():
    neuron = MultiLevelIF(levels=4, threshold=1.0, surrogate="ste")
    h = torch.linspace(-3.0, 3.0, 1001)
    assert torch.equal(_grad_wrt_input(neuron, h, return_levels=False), torch.ones_like(h))
    assert torch.equal(_grad_wrt_input(neuron, h, return_levels=True), torch.full_like(h, 4.0))


@pytest.mark.parametrize("detach_reset,expected", [(True, 1.0), (False, 0.0)])
def test_gradient_through_soft_reset(detach_reset, expected):
    # ∂O(2)/∂x(1) = ∂O/∂H(2) · ∂P(1)/∂H(1): 1 · 1 detached, 1 · (1 − 1) differentiated (STE).
    neuron = MultiLevelIF(levels=2, threshold=1.0, surrogate="ste", detach_reset=detach_reset)
    x = torch.tensor([[0.7], [0.4]], requires_grad=True)
    neuron(x)[1].sum().backward()
    assert x.grad[:, 0].tolist() == [expected, 1.0]


# -- argument validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,exc,message", [
    (dict(levels=0, threshold=1.0), ValueError, "levels must be a positive integer, not 0"),
    (dict(levels=-2, threshold=1.0), ValueError, "levels must be a positive integer, not -2"),
    (dict(levels=2.0, threshold=1.0), TypeError, "levels must be a positive integer, not 2.0"),
    (dict(levels=True, threshold=1.0), TypeError, "levels must be a positive integer, not True"),
    (dict(levels=2, threshold=0.0), ValueError, "threshold must be a positive float, not 0.0"),
    (dict(levels=2, threshold=-1), ValueError, "threshold must be a positive float, not -1"),
    (dict(levels=2, threshold=math.inf), ValueError,
     "threshold must be a positive float, not inf"),
    (dict(levels=2, threshold="1"), TypeError, "threshold must be a positive float, not '1'"),
    (dict(levels=2, threshold=1.0, surrogate="tanh"), ValueError,
     "surrogate must be 'sigmoid' or 'ste', not 'tanh'"),
    (dict(levels=2, threshold=1.0, alpha=0), ValueError, "alpha must be a positive float, not 0"),
    (dict(levels=2, threshold=1.0, v0="0"), TypeError, "v0 must be a finite float, not '0'"),
])
def test_module_validation(kwargs, exc, message):
    with pytest.raises(exc) as info:
        MultiLevelIF(**kwargs)
    assert str(info.value) == message


def test_module_input_validation():
    neuron = MultiLevelIF(levels=2, threshold=1.0)
    with pytest.raises(TypeError) as info:
        neuron(torch.ones(2, 3, dtype=torch.int32))
    assert str(info.value) == "input must be a floating-point tensor, not torch.int32"
    with pytest.raises(ValueError) as info:
        neuron(torch.tensor(1.0))
    assert str(info.value) == ("input must have a leading timestep axis [T, ...] with T >= 1, "
                               "not shape ()")


@pytest.mark.parametrize("args,kwargs,exc,message", [
    ((torch.ones(2, 3, dtype=torch.int64), 1, 0), {}, ValueError,
     "levels must be a positive integer, not 0"),
    ((torch.ones(2, 3, dtype=torch.int64), 0, 2), {}, ValueError,
     "threshold must be a positive integer, not 0"),
    ((torch.ones(2, 3, dtype=torch.int64), -4, 2), {}, ValueError,
     "threshold must be a positive integer, not -4"),
    ((torch.ones(2, 3, dtype=torch.int64), 1.5, 2), {}, TypeError,
     "threshold must be a positive integer, not 1.5"),
    ((torch.ones(2, 3), 1, 2), {}, TypeError,
     "currents must be an integer tensor, not torch.float32"),
    ((np.ones((2, 3)), 1, 2), {}, TypeError, "currents must be an integer tensor, not float64"),
    ((torch.ones(2, 3, dtype=torch.bool), 1, 2), {}, TypeError,
     "currents must be an integer tensor, not torch.bool"),
    (([1, 2], 1, 2), {}, TypeError, "currents must be a torch.Tensor or numpy.ndarray, not list"),
    ((torch.ones(2, 3, dtype=torch.int64), 1, 2), {"v0": 0.5}, TypeError,
     "v0 must be an integer, not 0.5"),
    ((torch.ones(0, 3, dtype=torch.int64), 1, 2), {}, ValueError,
     "currents must have a leading timestep axis [T, ...] with T >= 1, not shape (0, 3)"),
])
def test_integer_form_validation(args, kwargs, exc, message):
    with pytest.raises(exc) as info:
        multilevel_if(*args, **kwargs)
    assert str(info.value) == message
