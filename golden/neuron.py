"""The multi-level integrate-and-fire neuron (SPEC §2, §3; seed 000 §3–4, Fig. 2, eqs. 1–4).

Two forms of one neuron:

- :class:`MultiLevelIF`, the float training module (PyTorch, surrogate gradients);
- :func:`multilevel_if`, the integer function that the golden model and the RTL obey bit for bit.

Both follow SPEC §2 with the per-spike threshold θ (the paper's V_th divided by N)::

    H    = P(t-1) + I(t)
    z(t) = 0 if H < θ else min(N, floor(H / θ))      # fires at equality
    P(t) = H - z(t)·θ                                # soft reset, in the same step
    P(0) = v0

Mapping between the two forms: for any scale ``s > 0``, the float module built with
``threshold = N·θ_int·s`` and ``v0 = v0_int·s``, driven by the currents ``I_int·s``, fires the same
levels z as ``multilevel_if(I_int, θ_int, N, v0_int)``, exactly whenever every intermediate float is
exactly representable (for instance ``s`` a power of two and moderate integers). Its float output
per timestep is ``z·θ_int·s``. The float module never clears the potential at t = T: it is
stateless across calls and every call starts at ``v0``, which is the same thing.

Both take ``reset="hard"`` (docs/reset.md): the same z, and ``P(t) = v0`` when ``z(t) >= 1``,
``H`` otherwise (the reset of NIR's IF neuron, with mlsnn's ``H >= θ`` and up to N levels).

Both take ``leak=k`` (docs/leak.md), k = 0 (no leak, the default) or 1..30: after the reset R
(``H − z·θ`` or the hard reset's value) the potential becomes ``R − (R >> k)`` in the integer
function, that is ``ceil(β·R)`` with β = 1 − 2^−k (the shift floors, so the kept part rounds
toward +inf), and ``β·R`` in the float module. The two agree exactly where every β·R is an
integer (in integer units); elsewhere the integer function is the exact one.
"""

import numbers
import math

import numpy as np
import torch

from .ir import MAX_LEAK as _MAX_LEAK
from .ir import leak_int

__all__ = ["MultiLevelIF", "multilevel_if", "leak_int", "bitserial_if"]


_SURROGATES = ("sigmoid", "ste")
_RESETS = ("soft", "hard")


def _check_reset(reset):
    if reset not in _RESETS:
        raise ValueError(f"reset must be 'soft' or 'hard', not {reset!r}")
    return reset


def _check_leak(leak):
    if isinstance(leak, bool) or not isinstance(leak, numbers.Integral):
        raise TypeError(f"leak must be an integer in 0..{_MAX_LEAK}, not {leak!r}")
    if not 0 <= leak <= _MAX_LEAK:
        raise ValueError(f"leak must be an integer in 0..{_MAX_LEAK}, not {leak!r}")
    return int(leak)


def _check_levels(levels):
    if isinstance(levels, bool) or not isinstance(levels, numbers.Integral):
        raise TypeError(f"levels must be a positive integer, not {levels!r}")
    if levels < 1:
        raise ValueError(f"levels must be a positive integer, not {levels!r}")
    return int(levels)


def _check_float_threshold(threshold):
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a positive float, not {threshold!r}")
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive float, not {threshold!r}")
    return float(threshold)


def _check_int_threshold(threshold):
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Integral):
        raise TypeError(f"threshold must be a positive integer, not {threshold!r}")
    if threshold < 1:
        raise ValueError(f"threshold must be a positive integer, not {threshold!r}")
    return int(threshold)


def _fire(h, theta, levels):
    """Levels z = max{k in 0..N : h >= k·θ} of a float tensor, as floats of the same dtype.

    ``floor(h / θ)`` alone may be off by one next to a micro-threshold when ``k·θ`` or ``h / θ``
    is rounded; the two corrections pin the comparison to ``h >= k·θ`` (k·θ computed in the
    tensor's dtype), so the neuron fires at equality exactly as SPEC §2 says.
    """
    z = torch.floor(h / theta).clamp(0, levels)
    z = z + ((h >= (z + 1) * theta) & (z < levels)).to(h.dtype)
    z = z - ((h < z * theta) & (z > 0)).to(h.dtype)
    return z


class _MultiLevelSpike(torch.autograd.Function):
    """Spike function with a surrogate backward.

    Forward: ``z·unit`` where z is given by :func:`_fire` and ``unit`` is θ (float output) or 1
    (levels). Backward, as the derivative of the output with respect to H:

    - ``"sigmoid"``: ``unit · Σ_{k=1..N} α·σ(α(H − kθ))·(1 − σ(α(H − kθ)))``;
    - ``"ste"``: ``unit / θ``, that is exactly 1 for the float output.
    """

    @staticmethod
    def forward(ctx, h, theta, levels, alpha, ste, value_output):
        z = _fire(h, theta, levels)
        ctx.theta, ctx.levels, ctx.alpha = theta, levels, alpha
        ctx.ste, ctx.value_output = ste, value_output
        if not ste:
            ctx.save_for_backward(h)
        return z * theta if value_output else z

    @staticmethod
    def backward(ctx, grad):
        theta, alpha = ctx.theta, ctx.alpha
        if ctx.ste:
            # Float output: ∂O/∂H = 1 exactly (seed 000, eq. 10). Levels: ∂z/∂H = 1/θ.
            g = grad if ctx.value_output else grad / theta
            return g, None, None, None, None, None
        (h,) = ctx.saved_tensors
        dz = torch.zeros_like(h)
        for k in range(1, ctx.levels + 1):
            s = torch.sigmoid(alpha * (h - k * theta))
            dz = dz + alpha * s * (1 - s)
        if ctx.value_output:
            dz = dz * theta
        return grad * dz, None, None, None, None, None


class MultiLevelIF(torch.nn.Module):
    """Multi-level integrate-and-fire neuron with soft reset, float training form (SPEC §2).

    Each timestep the neuron integrates its input current, then fires a value spike z(t) in
    0..N: the number of times the per-spike threshold θ = V_th/N fits into the potential H
    (firing at equality, saturating at N), and subtracts z·θ (soft reset, P may be negative).
    Over T timesteps of a constant input x the output takes exactly N·T + 1 values and saturates
    at x = V_th (seed 000, Fig. 2).

    Parameters
    ----------
    levels : int
        N ≥ 1, the largest value of a spike. N = 1 is the binary IF neuron.
    threshold : float
        The paper's V_th > 0. The per-spike threshold is ``theta = threshold / levels``.
    surrogate : ``"sigmoid"`` or ``"ste"``
        Backward through the spike function. ``"sigmoid"``: the sum over the N micro-thresholds
        of the sigmoid-surrogate derivative α·σ(αx)(1 − σ(αx)), x = H − kθ, k = 1..N (seed 000,
        Fig. 5), in units of levels; multiplied by θ for the float output. ``"ste"``: the
        straight-through estimator of barrier neurons, ∂O/∂H = 1 for the float output
        (seed 000, eq. 10).
    alpha : float
        Sharpness α of the sigmoid surrogate (default 5, seed 000). Ignored by ``"ste"``.
    v0 : float
        Initial potential P(0) of every call (default 0; θ/2 rounds to nearest, as QCFS).
    detach_reset : bool
        If true (the default), the soft reset ``P = H − z·θ`` is treated as a constant in the
        backward pass, so gradients through time flow through P with derivative 1; this is the
        common choice in surrogate training and keeps gradients large. If false, the reset is
        differentiated with the surrogate too (∂P/∂H = 1 − ∂O/∂H). Hard reset: detached,
        ∂P/∂H = 1 where the neuron did not fire and 0 where it did; not detached, plus
        ``(v0 − H)·∂f/∂H`` with f the one-level spike ``[H >= θ]`` and its surrogate.
    reset : ``"soft"`` or ``"hard"``
        ``"soft"`` (the default): ``P = H − z·θ``. ``"hard"``: ``P = v0`` when z ≥ 1, else H
        (docs/reset.md); z is the same.
    leak : int
        k in 0..30 (docs/leak.md): after the reset the potential is multiplied by
        β = 1 − 2^−k (0, the default: no leak, β = 1). The gradient through time is then β
        instead of 1.

    Members
    -------
    theta : float
        The per-spike threshold V_th / N.
    beta : float
        The leak factor 1 − 2^−k (1.0 without leak).

    Raises
    ------
    TypeError, ValueError
        On a bad argument, with a message naming it.
    """

    def __init__(self, *, levels, threshold, surrogate="sigmoid", alpha=5.0, v0=0.0,
                 detach_reset=True, reset="soft", leak=0):
        super().__init__()
        self.levels = _check_levels(levels)
        self.threshold = _check_float_threshold(threshold)
        if surrogate not in _SURROGATES:
            raise ValueError(f"surrogate must be 'sigmoid' or 'ste', not {surrogate!r}")
        self.surrogate = surrogate
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
            raise TypeError(f"alpha must be a positive float, not {alpha!r}")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be a positive float, not {alpha!r}")
        self.alpha = float(alpha)
        if isinstance(v0, bool) or not isinstance(v0, numbers.Real) or not math.isfinite(v0):
            raise TypeError(f"v0 must be a finite float, not {v0!r}")
        self.v0 = float(v0)
        if not isinstance(detach_reset, bool):
            raise TypeError(f"detach_reset must be a bool, not {detach_reset!r}")
        self.detach_reset = detach_reset
        self.reset = _check_reset(reset)
        self.leak = _check_leak(leak)

    @property
    def theta(self):
        return self.threshold / self.levels

    @property
    def beta(self):
        return 1.0 - 2.0 ** -self.leak if self.leak else 1.0

    def forward(self, x, *, return_levels=False):
        """Run T timesteps from P(0) = v0.

        Parameters
        ----------
        x : torch.Tensor
            Float input currents, multi-step ``[T, B, ...]`` (any shape with the time axis first).
        return_levels : bool
            If false (the default), return the float values ``z·θ`` that the next layer receives,
            with the surrogate derivative as documented in the class. If true, return the levels
            z (integer-valued floats in 0..N); their backward is the float one divided by θ.

        Returns
        -------
        torch.Tensor
            Same shape and dtype as ``x``.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, not {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, not {x.dtype}")
        if x.dim() < 1 or x.shape[0] < 1:
            raise ValueError(f"input must have a leading timestep axis [T, ...] with T >= 1, "
                             f"not shape {tuple(x.shape)}")
        theta, ste = self.theta, self.surrogate == "ste"
        p = torch.full_like(x[0], self.v0)
        out = []
        for t in range(x.shape[0]):
            h = p + x[t]
            o = _MultiLevelSpike.apply(h, theta, self.levels, self.alpha, ste, not return_levels)
            if self.reset == "hard":
                p = torch.where(o.detach() > 0, torch.full_like(h, self.v0), h)
                if not self.detach_reset:
                    # Zero in value (exact forward), (v0 − H)·∂f/∂H in the backward pass.
                    f = _MultiLevelSpike.apply(h, theta, 1, self.alpha, ste, False)
                    p = p + (f - f.detach()) * (self.v0 - h)
            else:
                charge = o * theta if return_levels else o
                p = h - (charge.detach() if self.detach_reset else charge)
            if self.leak:
                p = p * self.beta
            out.append(o)
        return torch.stack(out)

    def extra_repr(self):
        return (f"levels={self.levels}, threshold={self.threshold}, surrogate={self.surrogate!r}, "
                f"alpha={self.alpha}, v0={self.v0}, detach_reset={self.detach_reset}, "
                f"reset={self.reset!r}, leak={self.leak}")


def multilevel_if(currents, threshold, levels, v0=0, *, return_potentials=False, reset="soft",
                  leak=0):
    """The integer multi-level IF neuron of SPEC §3 over one inference of T timesteps.

    For t = 1..T: ``H = P + I(t)``; ``z = 0 if H < θ else min(N, H // θ)``;
    ``R = H − z·θ`` (``reset="hard"``: ``R = v0`` if z ≥ 1 else H) and ``P = R − (R >> k)``
    with k = ``leak`` (k = 0: ``P = R``), except that after t = T the potential is cleared to v0
    (SPEC §3: the next inference starts clean). Pure: no hidden state.

    Parameters
    ----------
    currents : torch.Tensor or numpy.ndarray
        Integer per-timestep input currents ``[T, ...]``, T ≥ 1, bias already included
        (``I(t) = b + Σ_events z·w``).
    threshold : int
        The integer per-spike threshold θ ≥ 1.
    levels : int
        N ≥ 1.
    v0 : int
        Initial potential, and the value the potential is cleared to after timestep T.
    return_potentials : bool
        Also return the potentials P(t) after each timestep's reset and leak, before the clear
        at t = T (shape ``[T, ...]``, int64), to check the reset.
    reset : ``"soft"`` or ``"hard"``
        ``P = H − z·θ`` (soft, SPEC §2) or ``P = v0`` where z ≥ 1, H elsewhere (hard,
        docs/reset.md).
    leak : int
        k in 0..30 (docs/leak.md); 0 is no leak.

    Returns
    -------
    z : torch.Tensor
        int64 ``[T, ...]``, the levels fired, in 0..N.
    final_potential : torch.Tensor
        int64 ``[...]``, the potential after the inference: v0 everywhere, per SPEC §3.
    potentials : torch.Tensor
        Only with ``return_potentials=True``; see above.

    Raises
    ------
    TypeError, ValueError
        On a bad argument, with a message naming it.
    """
    levels = _check_levels(levels)
    theta = _check_int_threshold(threshold)
    _check_reset(reset)
    leak = _check_leak(leak)
    if isinstance(v0, bool) or not isinstance(v0, numbers.Integral):
        raise TypeError(f"v0 must be an integer, not {v0!r}")
    v0 = int(v0)
    if isinstance(currents, np.ndarray):
        if not np.issubdtype(currents.dtype, np.integer):
            raise TypeError(f"currents must be an integer tensor, not {currents.dtype}")
        if (currents.dtype == np.uint64 and currents.size
                and currents.max() > np.iinfo(np.int64).max):
            raise ValueError("currents must fit in int64")
        currents = torch.from_numpy(currents.astype(np.int64))
    elif isinstance(currents, torch.Tensor):
        if currents.is_floating_point() or currents.is_complex() or currents.dtype == torch.bool:
            raise TypeError(f"currents must be an integer tensor, not {currents.dtype}")
    else:
        raise TypeError(f"currents must be a torch.Tensor or numpy.ndarray, "
                        f"not {type(currents).__name__}")
    currents = currents.to(torch.int64)
    if currents.dim() < 1 or currents.shape[0] < 1:
        raise ValueError(f"currents must have a leading timestep axis [T, ...] with T >= 1, "
                         f"not shape {tuple(currents.shape)}")
    p = torch.full(currents.shape[1:], v0, dtype=torch.int64)
    zs, ps = [], []
    for t in range(currents.shape[0]):
        h = p + currents[t]
        z = torch.where(h >= theta,
                        torch.div(h, theta, rounding_mode="floor").clamp(max=levels),
                        torch.zeros_like(h))
        p = torch.where(z > 0, torch.full_like(h, v0), h) if reset == "hard" else h - z * theta
        p = leak_int(p, leak)
        zs.append(z)
        ps.append(p)
    z = torch.stack(zs)
    final = torch.full(currents.shape[1:], v0, dtype=torch.int64)
    if return_potentials:
        return z, final, torch.stack(ps)
    return z, final


def bitserial_if(currents, threshold, v0=0, bias=0):
    """The integer bit-serial neuron of docs/bitserial.md (seed 003, corrected Eq. 8), MSB first.

    Accumulate (Horner) over the T input timesteps, then fire T binary spikes by subtraction::

        acc  = 0;  acc ← 2·acc + c(t)          for t = 1..T   (c(t) = Σ_i w_ij·s_i(t), no bias)
        U    = acc + b + v0                                   (bias and offset once)
        R    = U;  s(t) = [R ≥ θ·2^(T−t)],  R ← R − s(t)·θ·2^(T−t)   for t = 1..T

    so that ``Σ_t s(t)·2^(T−t) = clip(floor(U / θ), 0, 2^T − 1)``; v0 = θ // 2 rounds to
    nearest (the seed's offset θ_seed/2^(T+1) with θ_seed = 2^T·θ).

    Parameters
    ----------
    currents : sequence of int, or int64 tensor ``[T, ...]``
        c(1), …, c(T), the weighted input bit-planes (input bit t carries weight 2^(T−t)).
    threshold : int
        θ ≥ 1, the value of the least significant output bit.
    v0, bias : int or int64 tensor
        Added once to the accumulated sum.

    Returns
    -------
    bits : list
        s(1), …, s(T) (ints, or int64 tensors like ``currents[0]``), MSB first.
    u : int or tensor
        U, what a bit-serial readout emits.
    """
    theta = _check_int_threshold(threshold)
    for name, v in (("v0", v0), ("bias", bias)):
        if isinstance(v, bool) or not isinstance(v, (numbers.Integral, torch.Tensor)):
            raise TypeError(f"{name} must be an integer, not {v!r}")
    T = len(currents)
    if T < 1:
        raise ValueError("currents must hold at least one timestep")
    acc = 0
    for c in currents:
        acc = 2 * acc + c
    u = acc + bias + v0
    r, bits = u, []
    for t in range(T):
        thr = theta << (T - 1 - t)
        s = (r >= thr) * 1
        r = r - s * thr
        bits.append(s)
    return bits, u
