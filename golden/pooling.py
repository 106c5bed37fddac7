"""Pooling layer kinds: ``maxpool2d`` and ``avgpool2d`` (``docs/pooling.md``).

Both take one ``(C, H, W)`` input and a k×k window with stride k that must tile it
(``H % k == 0`` and ``W % k == 0``); input index ``i = (c·H + y)·W + x`` has exactly one target,
``j = pool_index(i) = (c·H/k + y//k)·W/k + x//k``.

``maxpool2d``  No neuron, no arrays. In every timestep the value of output j is the largest
               input value of its window in that timestep (with binary spikes: the OR). State:
               ``M[j]`` (0 at the start of every timestep), ``M[j] ← max(M[j], z)`` per input
               event; at the end of the timestep output j emits ``(j, M[j])`` when ``M[j] > 0``,
               j ascending, and ``M[j] ← 0``. Its input may not be a SEW join (two streams:
               the maximum of their sum is not formed anywhere).
``avgpool2d``  Sum pooling into a multi-level IF neuron with its own θ, N, v0 (no bias, no
               weights): ``P[j] += z`` per input event, then the fire and soft reset of SPEC §2.
               With θ = k²·θ_float/scale the float model's average pooling is exact at the
               integer level (the 1/k² is folded into θ).

Counters (SPEC §5 style, per inference): both kinds ``ev_in`` = input events, ``syn_updates``
= ``ev_in`` (fan-out 1), ``p_rd`` = ``p_wr`` = ``syn_updates + T·N_out`` (the update's
read-modify-write, then the end-of-timestep sweep), ``w_rd`` = ``b_rd`` = 0, ``ev_out`` =
events emitted; ``syn_acc``: avgpool ``Σ z`` (accumulations, as every sum kind), maxpool
``syn_updates`` (one comparison per update).
"""

from __future__ import annotations


from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import MlsnnError
from .ir import Kind, _check_int, _check_name, _check_neuron, _one_input, register, signed_width

__all__ = ["MaxPool2d", "AvgPool2d", "pool_index"]


def pool_index(in_shape, kernel):
    """``j`` of every input index ``i`` (flat CHW) for a k×k, stride-k pool (int64 array)."""
    c, h, w = in_shape
    ho, wo = h // kernel, w // kernel
    cc, yy, xx = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    return ((cc * ho + yy // kernel) * wo + xx // kernel).reshape(-1).astype(np.int64)


class _Pool(Kind):
    """What both pooling kinds share: one (C, H, W) input tiled by a k×k window."""

    def _check_kernel(self, owner):
        _check_name(f"layer {self.name!r}", self.name)
        object.__setattr__(self, "inputs", _one_input(owner, self.inputs))
        _check_int(owner, "kernel", self.kernel, minimum=1, maximum=64)

    def check_inputs(self, owner, in_shapes, scales, n_streams):
        in_shape = in_shapes[0]
        if len(in_shape) != 3:
            raise MlsnnError(f"{owner}: a {self.kind} input must be (C, H, W), but "
                             f"'{self.inputs[0]}' gives {tuple(in_shape)}")
        _, h, w = in_shape
        k = self.kernel
        if h % k or w % k:
            raise MlsnnError(f"{owner}: the {k}x{k} window (stride {k}) does not tile the "
                             f"{h}x{w} input of '{self.inputs[0]}' ({h} and {w} must be "
                             f"multiples of {k})")

    def out_shape(self, in_shape):
        c, h, w = in_shape
        return (c, h // self.kernel, w // self.kernel)

    def golden_map(self, info):
        return PoolMap(self, info)

    def _energy(self, info, pool):
        return dict(name=self.name, kind="pool", pool=pool, inputs=self.inputs,
                    in_shape=info.in_shape, out_shape=info.out_shape, kernel=self.kernel,
                    stride=self.kernel)


@register
@dataclass(frozen=True, eq=False)
class MaxPool2d(_Pool):
    """k×k max pooling, stride k, no neuron (see the module docstring)."""

    name: str
    inputs: tuple
    kernel: int = 2
    kind = "maxpool2d"
    combine = "max"
    required = ("kernel",)
    hw_core = "hw.pool:PoolCore"

    def __post_init__(self):
        self._check_kernel(f"layer '{self.name}'")

    def check_inputs(self, owner, in_shapes, scales, n_streams):
        super().check_inputs(owner, in_shapes, scales, n_streams)
        if n_streams != 1:
            raise MlsnnError(f"{owner}: a maxpool2d cannot read '{self.inputs[0]}', a SEW "
                             f"join (the maximum of its two streams' sum is formed nowhere); "
                             f"put a layer with a neuron between them")

    def input_terms(self, z):
        return z[0], z[0]

    def static_bound(self, T, per_t):
        return per_t                    # M restarts at 0 every timestep

    def width_floor(self):
        return signed_width(1)

    def out_zmax(self, z_index):
        return z_index

    def out_scale(self, in_scale):
        return in_scale

    def energy_spec(self, info, timesteps):
        return dict(self._energy(info, "max"), levels=0, p_bits=info.width, a_bits=None)


@register
@dataclass(frozen=True, eq=False)
class AvgPool2d(_Pool):
    """k×k sum pooling, stride k, into a multi-level IF neuron (see the module docstring)."""

    name: str
    inputs: tuple
    kernel: int = 2
    threshold: int = 1
    levels: int = 1
    v0: int = 0
    potential_width: Optional[int] = None
    scale: float = 1.0
    kind = "avgpool2d"
    required = ("kernel", "threshold", "levels")
    hw_core = "hw.pool:PoolCore"

    def __post_init__(self):
        owner = f"layer '{self.name}'"
        self._check_kernel(owner)
        _check_neuron(owner, self.threshold, self.levels, self.v0)
        if self.potential_width is not None:
            _check_int(owner, "potential_width", self.potential_width, minimum=2, maximum=64)
        object.__setattr__(self, "scale", float(self.scale))

    def input_terms(self, z):
        return z[0], z[0] * self.kernel * self.kernel

    def energy_spec(self, info, timesteps):
        return dict(self._energy(info, "avg"), levels=self.levels, p_bits=info.width,
                    a_bits=max(1, (self.levels * timesteps).bit_length()))





class PoolMap:
    """The golden map of a pooling layer (:mod:`golden.reference`): every input index has one
    target, :func:`pool_index`; ``apply`` sums the window (avgpool), ``max`` takes its maximum
    (maxpool)."""

    has_bias = False
    bias = None

    def __init__(self, layer, info):
        import torch
        self._torch = torch
        self.layer, self.info = layer, info
        self.fanout = np.ones(info.n_in, dtype=np.int64)
        self.index = torch.from_numpy(pool_index(info.in_shape, layer.kernel))

    def _windows(self, z):
        B = z.shape[0]
        c, h, w = self.info.in_shape
        k = self.layer.kernel
        return z.reshape(B, c, h // k, k, w // k, k)

    def apply(self, z, stream, sign=0):
        if sign == -1:
            return self._torch.zeros(z.shape[0], self.info.n_out, dtype=z.dtype)
        return self._windows(z).sum(dim=(3, 5)).reshape(z.shape[0], -1)

    def max(self, z):
        return self._windows(z).amax(dim=(3, 5)).reshape(z.shape[0], -1)

    def matrix(self):
        m = self._torch.zeros(self.info.n_in, self.info.n_out, dtype=self._torch.float64)
        m[self._torch.arange(self.info.n_in), self.index] = 1.0
        return m
