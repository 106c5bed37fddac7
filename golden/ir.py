"""The integer network description (IR) of SPEC §6.

A :class:`Network` is an input spec, a number of timesteps and a tuple of layers in topological
order. Every layer names its inputs (``"input"`` is the network input), so the layers form a DAG:
residual joins have two inputs. The last layer is the readout: it integrates, never fires, and
its potentials after T timesteps are the network output.

Arrays (weights, biases) live in the layer objects; on disk a network is ``network.json``
(versioned schema, everything but the arrays) plus ``network.npz`` (``<layer>.weight``,
``<layer>.bias``, integer arrays).

Layer kinds
-----------
``dense``   weight ``[N_in, N_out]`` (flat layout ``w[i*N_out + j]``), bias ``[N_out]``.
``conv2d``  weight ``[C_in, K, K, C_out]`` (flat ``((ci*K + ky)*K + kx)*C_out + co``), bias
            ``[C_out]``; neuron index ``j = (co*H_out + yo)*W_out + xo``.
``barrier`` Sparse-ResNet barrier neuron joining two streams (own θ, N, v0, one integer weight
            per input stream, no bias).
``sew``     SEW-ResNet join (no neuron, the next layer receives the events of both streams).
``maxpool2d``, ``avgpool2d``  pooling (:mod:`golden.pooling`).

``Join(mode="barrier" | "sew", ...)`` builds a :class:`Barrier` or a :class:`Sew`; ``isinstance(x,
Join)`` holds for both. Schema 1 files (kind ``"join"`` with a ``mode``) are still read.

The kind protocol
-----------------
Every kind is a frozen dataclass registered in :data:`KINDS` (:func:`register`) that answers,
for the rest of the code base, everything that depends on the kind (see :class:`Kind`): how many
inputs it takes, which arrays it stores, whether it may be the readout, its checks against its
inputs, its output shape, its static bound, the largest value it emits, its per-index fan-out,
its golden map (:mod:`golden.reference`), its energy description (:mod:`golden.energy.arch`)
and its hardware core (``hw_core``, resolved by :mod:`hw.cores`). A new kind is one module that
defines and registers its class (see ``docs/extending.md``).

Widths
------
The potential width of a layer is derived from the static bound of SPEC §3 so that no sum can
overflow; ``potential_width`` in the IR may force it narrower (then the hardware saturates and
raises its overflow flag, and :mod:`golden.reference` predicts it). The bound holds for both
resets of a spiking layer (field ``reset``, docs/reset.md): after the fire ``|P| <= |H|`` (soft)
or ``P ∈ {H, v0}`` (hard), so ``|P(t)| <= |v0| + t·max|I|`` either way. The integer leak
(field ``leak``, docs/leak.md) only shrinks the potential, ``|R − (R >> k)| <= |R|``, so the
bound does not depend on it either.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .errors import MlsnnError

__all__ = [
    "SCHEMA_VERSION", "InputSpec", "Kind", "Dense", "Conv2d", "Join", "Barrier", "Sew",
    "Network", "KINDS", "register", "kind_of", "load", "save", "conv_out_size", "RESETS",
    "MAX_LEAK", "leak_int", "CODINGS", "EarlyExit", "CONFIDENCES", "MAX_ALPHA",
]

#: Version written; :func:`from_json` reads 1 (kind ``"join"`` + ``mode``) and 2.
SCHEMA_VERSION = 2
READ_VERSIONS = (1, 2)
INPUT = "input"
#: Values of a spiking layer's ``reset`` (docs/reset.md): ``"soft"`` P ← H − z·θ, ``"hard"``
#: P ← v0 when z ≥ 1.
RESETS = ("soft", "hard")
#: Values of a spiking layer's ``coding`` (docs/bitserial.md): ``"rate"`` the neuron of SPEC §2,
#: ``"bitserial"`` the MSB-first bit-serial neuron of seed 003 (Horner accumulate, then T
#: binary fires against θ·2^(T−1), …, θ).
CODINGS = ("rate", "bitserial")
#: Optional fields that ``network.json`` leaves out while unset (files stay as they were).
_OMIT_WHEN_NONE = frozenset({"fire_lanes"})
#: Largest ``leak`` k of a spiking layer (docs/leak.md): β = 1 − 2^−k; 0 is no leak (IF).
MAX_LEAK = 30


def leak_int(r, leak):
    """The integer leak of docs/leak.md: ``r − (r >> leak)`` (``leak`` 0: ``r``), for Python
    ints and int64 tensors alike (``>>`` is the arithmetic shift, a floor division by 2^k)."""
    return r - (r >> leak) if leak else r


def _check_int(owner, fname, value, *, minimum=None, maximum=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise MlsnnError(f"{owner}: field '{fname}' must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise MlsnnError(f"{owner}: field '{fname}' must be >= {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise MlsnnError(f"{owner}: field '{fname}' must be <= {maximum}, not {value}")
    return int(value)


#: Widest potential (bits, signed) of any layer: what the hardware builds and the golden model
#: computes (int64).
MAX_POTENTIAL_WIDTH = 64


def _check_neuron(owner, threshold, levels, v0):
    """θ, N and v0 of a neuron: N·θ and v0 must fit the widest potential."""
    _check_int(owner, "levels", levels, minimum=1, maximum=255)
    top = (1 << (MAX_POTENTIAL_WIDTH - 1)) - 1
    _check_int(owner, "threshold", threshold, minimum=1)
    if threshold > top // levels:
        raise MlsnnError(f"{owner}: field 'threshold' is {threshold}, but levels x threshold "
                         f"must fit the {MAX_POTENTIAL_WIDTH}-bit potential of the hardware "
                         f"(threshold <= {top // levels} for levels={levels})")
    _check_int(owner, "v0", v0, minimum=-top, maximum=top)


def _check_name(owner, value):
    if not isinstance(value, str) or not value or not value.replace("_", "").isalnum():
        raise MlsnnError(f"{owner}: field 'name' must be a non-empty identifier "
                         f"(letters, digits, '_'), not {value!r}")
    if value == INPUT:
        raise MlsnnError(f"{owner}: field 'name' may not be '{INPUT}' (reserved for the "
                         f"network input)")
    return value


def _check_array(owner, fname, arr, shape, bits):
    if not isinstance(arr, np.ndarray):
        raise MlsnnError(f"{owner}: field '{fname}' must be a numpy array, not "
                         f"{type(arr).__name__}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise MlsnnError(f"{owner}: field '{fname}' must hold integers, not {arr.dtype}")
    if tuple(arr.shape) != tuple(shape):
        raise MlsnnError(f"{owner}: field '{fname}' must have shape {tuple(shape)}, "
                         f"not {tuple(arr.shape)}")
    if bits is not None and arr.size:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if int(arr.min()) < lo or int(arr.max()) > hi:
            raise MlsnnError(f"{owner}: field '{fname}' has values in "
                             f"[{int(arr.min())}, {int(arr.max())}], outside the signed "
                             f"{bits}-bit range [{lo}, {hi}]")


def signed_width(bound):
    """Bits of a two's complement signal holding every integer in ``[-bound, bound]``."""
    return max(int(bound), 1).bit_length() + 1


def conv_out_size(size, kernel, stride, padding):
    """Output size of a convolution along one axis (floor division, zero padding)."""
    return (size + 2 * padding - kernel) // stride + 1


def axis_offsets(size_in, size_out, kernel, stride, padding):
    """The conv fan-out along one axis, the one definition every module uses: per input
    coordinate i, the kernel offsets k (ascending) that reach a valid output o,
    ``o*S − P + k = i`` with ``0 <= o < size_out`` (``o = (i + P − k) / S``)."""
    return [[k for k in range(kernel)
             if (i + padding - k) % stride == 0 and 0 <= (i + padding - k) // stride < size_out]
            for i in range(size_in)]


@dataclass(frozen=True)
class InputSpec:
    """The network input: an unsigned integer tensor presented at every timestep.

    Parameters
    ----------
    shape : tuple of int
        ``(N,)`` for a vector or ``(C, H, W)`` for an image.
    in_bits : int
        Width of an input value (pixel); values are in ``[0, 2**in_bits - 1]``.
    scale : float
        Float meaning of one input unit (used only to check SEW joins and by the exporter).
    """

    shape: tuple
    in_bits: int = 8
    scale: float = 1.0

    def __post_init__(self):
        shape = self.shape
        if not isinstance(shape, (tuple, list)) or len(shape) not in (1, 3):
            raise MlsnnError(f"input: field 'shape' must be (N,) or (C, H, W), not {shape!r}")
        shape = tuple(_check_int("input", "shape", s, minimum=1) for s in shape)
        object.__setattr__(self, "shape", shape)
        _check_int("input", "in_bits", self.in_bits, minimum=1, maximum=16)
        object.__setattr__(self, "scale", float(self.scale))

    @property
    def name(self):
        return INPUT

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def zmax(self):
        return (1 << self.in_bits) - 1


def _check_fire_lanes(owner, layer):
    """``fire_lanes`` unset, or an integer >= 1 that divides the layer's ``lanes``."""
    if layer.fire_lanes is not None:
        _check_int(owner, "fire_lanes", layer.fire_lanes, minimum=1)
        if layer.lanes % layer.fire_lanes:
            raise MlsnnError(f"{owner}: fire_lanes ({layer.fire_lanes}) must divide its "
                             f"lanes ({layer.lanes})")


def _fire(layer):
    """The fire units of the sweep (docs/lanes.md §fire lanes): ``fire_lanes``, or ``lanes``
    when unset."""
    return layer.lanes if layer.fire_lanes is None else layer.fire_lanes


class Kind:
    """The protocol every layer kind implements (defaults for a one-input neuron layer).

    Class attributes
    ----------------
    kind : str            JSON name (``"dense"``), the key in :data:`KINDS`.
    n_inputs : int        Input streams (1, or 2 for the joins).
    arrays : tuple        Names of the arrays stored in ``network.npz`` (``<layer>.<name>``).
    required : tuple      JSON fields that must be given.
    can_readout : bool    May be the last layer.
    combine : str         How an event updates its targets' state: ``"sum"`` (P += z·w) or
                          ``"max"`` (P = max(P, z)); none for a passthrough kind.
    passthrough : bool    Forwards its input streams unchanged (SEW): the next layer receives
                          the events of every stream.
    hw_core : str         ``"module:Class"`` of the hardware core (:mod:`hw.cores`).
    label : str           Short name in reports.
    """

    kind = "?"
    n_inputs = 1
    arrays = ()
    required = ()
    can_readout = False
    combine = "sum"
    passthrough = False
    hw_core = ""
    readout = False
    v0 = 0

    @property
    def label(self):
        return self.kind

    def check_inputs(self, owner, in_shapes, scales, n_streams):
        """Raise :class:`MlsnnError` unless the inputs (shapes, scales, number of event streams
        entering) suit this layer."""

    def out_shape(self, in_shape):
        return tuple(in_shape)

    def input_terms(self, z):
        """``(z_index, per_t)`` from the largest value per input index and timestep of each
        input ``z``: the largest total value per input index, and the bound on ``|I|`` (the
        current of one timestep) of SPEC §3."""
        raise NotImplementedError(self.kind)

    def static_bound(self, T, per_t):
        """The static bound on ``|P|``, ``|H|`` (SPEC §3)."""
        return abs(self.v0) + T * per_t

    def width_floor(self):
        """Widths the potential needs whatever the inputs (θ·N, v0)."""
        return max(signed_width(self.threshold * self.levels), signed_width(abs(self.v0)))

    def out_zmax(self, z_index):
        """Largest value of an emitted event."""
        return 0 if self.readout else self.levels

    def fanout_counts(self, in_shape):
        """``|fanout(i)|`` for every input index i (flat, CHW order)."""
        return np.ones(math.prod(in_shape), dtype=np.int64)

    def out_scale(self, in_scale):
        """Float meaning of one unit of this layer's events."""
        return self.scale

    def energy_fanouts(self, info):
        """Per input index, for the energy comparison (:mod:`golden.energy.compare`): the
        exact fan-out, the stride-aligned fan-out that ignores borders, and the analytic
        fan-outs F (every kernel offset) and Fs (stride-aligned)."""
        ones = np.ones(info.n_in)
        return ones, ones, 1, 1

    def golden_map(self, info):
        """The linear map :mod:`golden.reference` integrates with (``fanout``, ``apply``,
        ``has_bias``, ``bias``, ``matrix``; a ``"max"`` kind: ``max``)."""
        raise NotImplementedError(f"kind '{self.kind}' has no golden map")

    def energy_spec(self, info, timesteps):
        """Keyword arguments of :class:`golden.energy.arch.LayerSpec` for this layer."""
        raise NotImplementedError(f"kind '{self.kind}' has no energy description")


#: kind name → class, every registered kind (:func:`register`).
KINDS = {}


def register(cls):
    """Class decorator: add a layer kind to :data:`KINDS` (its ``kind`` must be new)."""
    if cls.kind in KINDS and KINDS[cls.kind] is not cls:
        raise ValueError(f"layer kind '{cls.kind}' is registered twice")
    KINDS[cls.kind] = cls
    return cls


def kind_of(layer):
    """The registered class of ``layer`` (raises :class:`MlsnnError` for anything else)."""
    cls = KINDS.get(getattr(layer, "kind", None))
    if cls is None or not isinstance(layer, cls):
        raise MlsnnError(f"not a layer of a registered kind ({sorted(KINDS)}): "
                         f"{type(layer).__name__}")
    return cls


def _one_input(owner, inputs):
    if isinstance(inputs, str):
        inputs = (inputs,)
    inputs = tuple(inputs) if isinstance(inputs, (list, tuple)) else None
    if inputs is None or len(inputs) != 1 or not isinstance(inputs[0], str):
        raise MlsnnError(f"{owner}: field 'inputs' must name exactly one input layer, "
                         f"not {inputs!r}")
    return inputs


@dataclass(frozen=True, eq=False)
class _Spiking(Kind):
    """Fields common to spiking layers (dense, conv2d). See the module docstring.

    ``reset`` is ``"soft"`` (P ← H − z·θ, SPEC §2; the default, and what a ``network.json``
    without the field means) or ``"hard"`` (P ← v0 when the neuron fires, H otherwise;
    docs/reset.md). The readout never fires, so it accepts either and behaves the same.

    ``leak`` is the integer leak k (docs/leak.md): 0 (the default, and what a ``network.json``
    without the field means) is the IF neuron; k in 1..:data:`MAX_LEAK` writes
    ``P ← R − (R >> k)`` after the reset, R the reset potential (β = 1 − 2^−k), at every
    timestep but the last. A readout must have leak 0.
    """

    name: str
    inputs: tuple
    threshold: int
    levels: int
    weight: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    v0: int = 0
    w_bits: int = 8
    b_bits: int = 16
    potential_width: Optional[int] = None
    readout: bool = False
    scale: float = 1.0
    lanes: int = 1
    reset: str = "soft"
    leak: int = 0
    coding: str = "rate"
    fire_lanes: Optional[int] = None

    def _check_common(self):
        owner = f"layer '{self.name}'"
        _check_name(f"layer {self.name!r}", self.name)
        object.__setattr__(self, "inputs", _one_input(owner, self.inputs))
        _check_neuron(owner, self.threshold, self.levels, self.v0)
        _check_int(owner, "w_bits", self.w_bits, minimum=2, maximum=16)
        _check_int(owner, "b_bits", self.b_bits, minimum=2, maximum=32)
        if self.potential_width is not None:
            _check_int(owner, "potential_width", self.potential_width, minimum=2, maximum=64)
        if not isinstance(self.readout, bool):
            raise MlsnnError(f"{owner}: field 'readout' must be true or false")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "lanes", _check_int(owner, "lanes", self.lanes, minimum=1))
        _check_fire_lanes(owner, self)
        if not isinstance(self.reset, str) or self.reset not in RESETS:
            raise MlsnnError(f"{owner}: field 'reset' must be 'soft' or 'hard', not "
                             f"{self.reset!r}")
        object.__setattr__(self, "leak", _check_int(owner, "leak", self.leak, minimum=0,
                                                    maximum=MAX_LEAK))
        if self.readout and self.leak:
            raise MlsnnError(f"{owner}: a leaky readout is not supported (leak {self.leak}): "
                             f"the readout integrates and never fires; give it leak 0")
        if not isinstance(self.coding, str) or self.coding not in CODINGS:
            raise MlsnnError(f"{owner}: field 'coding' must be 'rate' or 'bitserial', not "
                             f"{self.coding!r}")
        if self.coding == "bitserial":
            if self.levels != 1:
                raise MlsnnError(f"{owner}: a bit-serial layer emits binary spikes: levels must "
                                 f"be 1, not {self.levels}")
            if self.reset != "soft":
                raise MlsnnError(f"{owner}: a bit-serial layer fires by subtraction: reset "
                                 f"must be 'soft', not {self.reset!r}")
            if self.leak:
                raise MlsnnError(f"{owner}: a bit-serial layer has no leak (leak "
                                 f"{self.leak}); give it leak 0")
        return owner

    fire = property(_fire)

    @property
    def bitserial(self):
        """True for ``coding="bitserial"`` (docs/bitserial.md)."""
        return self.coding == "bitserial"

    def static_bound(self, T, per_t):
        """SPEC §3's bound; a bit-serial layer sums T bit-planes with weights 2^(T−1) … 1
        (docs/bitserial.md §3): ``|v0| + (2^T − 1)·per_t``, and its largest threshold
        ``θ·2^(T−1)`` must fit too."""
        if self.coding != "bitserial":
            return super().static_bound(T, per_t)
        return max(abs(self.v0) + ((1 << T) - 1) * per_t, self.threshold << (T - 1))

    def _check_lanes(self, owner, channels, what):
        if channels % self.lanes:
            raise MlsnnError(f"{owner}: lanes ({self.lanes}) must divide its {channels} "
                             f"{what}")

    arrays = ("weight", "bias")
    required = ("threshold", "levels")
    can_readout = True
    hw_core = "hw.layer:LayerCore"

    def input_terms(self, z):
        per_t = int(np.abs(self.bias.astype(np.int64)).max(initial=0)) \
            + z[0] * self.max_in_weight_sum()
        return z[0], per_t

    def golden_map(self, info):
        from .maps import LinearMap
        return LinearMap(self, info)

    def _energy_common(self, info, timesteps):
        a_bits = None if self.readout else max(1, (self.levels * timesteps).bit_length())
        return dict(name=self.name, inputs=self.inputs, out_shape=info.out_shape,
                    levels=0 if self.readout else self.levels, readout=self.readout,
                    w_bits=self.w_bits, b_bits=self.b_bits, p_bits=info.width, a_bits=a_bits,
                    lanes=self.lanes, reset=self.reset)


@register
@dataclass(frozen=True, eq=False)
class Dense(_Spiking):
    """Fully connected layer; ``weight`` is ``[N_in, N_out]``, ``bias`` ``[N_out]``."""

    kind = "dense"

    def check_inputs(self, owner, in_shapes, scales, n_streams):
        if math.prod(in_shapes[0]) != self.in_features:
            raise MlsnnError(f"{owner}: field 'weight' has {self.in_features} input rows but "
                             f"'{self.inputs[0]}' gives {math.prod(in_shapes[0])} values")

    def energy_spec(self, info, timesteps):
        return dict(self._energy_common(info, timesteps), kind="dense", in_shape=(info.n_in,))

    def __post_init__(self):
        owner = self._check_common()
        w = np.asarray(self.weight) if isinstance(self.weight, (list, tuple)) else self.weight
        object.__setattr__(self, "weight", w)
        if not isinstance(w, np.ndarray) or w.ndim != 2:
            raise MlsnnError(f"{owner}: field 'weight' must be a 2-D integer array [N_in, N_out]")
        _check_array(owner, "weight", w, w.shape, self.w_bits)
        b = np.asarray(self.bias) if isinstance(self.bias, (list, tuple)) else self.bias
        object.__setattr__(self, "bias", b)
        _check_array(owner, "bias", b, (w.shape[1],), self.b_bits)
        self._check_lanes(owner, w.shape[1], "output neurons")

    @property
    def in_features(self):
        return int(self.weight.shape[0])

    @property
    def out_features(self):
        return int(self.weight.shape[1])

    def out_shape(self, in_shape):
        return (self.out_features,)

    def fanout_counts(self, in_shape):
        return np.full(math.prod(in_shape), self.out_features, dtype=np.int64)

    def energy_fanouts(self, info):
        full = np.full(info.n_in, float(self.out_features))
        return full, full, self.out_features, self.out_features

    def max_in_weight_sum(self):
        """max_j Σ_i |w_ij| (the static bound's weight term)."""
        return int(np.abs(self.weight.astype(np.int64)).sum(axis=0).max(initial=0))


@register
@dataclass(frozen=True, eq=False)
class Conv2d(_Spiking):
    """2-D convolution; ``weight`` is ``[C_in, K, K, C_out]``, ``bias`` ``[C_out]``."""

    stride: int = 1
    padding: int = 0
    kind = "conv2d"

    def check_inputs(self, owner, in_shapes, scales, n_streams):
        in_shape = in_shapes[0]
        if len(in_shape) != 3:
            raise MlsnnError(f"{owner}: a conv2d input must be (C, H, W), but "
                             f"'{self.inputs[0]}' gives {tuple(in_shape)}")
        if in_shape[0] != self.in_channels:
            raise MlsnnError(f"{owner}: field 'weight' has {self.in_channels} input channels "
                             f"but '{self.inputs[0]}' gives {in_shape[0]}")
        _, ho, wo = self.out_shape(in_shape)
        if ho < 1 or wo < 1:
            raise MlsnnError(f"{owner}: the kernel ({self.kernel}) does not fit the "
                             f"{in_shape[1]}x{in_shape[2]} input with padding {self.padding}")

    def energy_spec(self, info, timesteps):
        return dict(self._energy_common(info, timesteps), kind="conv", in_shape=info.in_shape,
                    kernel=self.kernel, stride=self.stride, padding=self.padding)

    def __post_init__(self):
        owner = self._check_common()
        w = self.weight
        if not isinstance(w, np.ndarray) or w.ndim != 4 or w.shape[1] != w.shape[2]:
            raise MlsnnError(f"{owner}: field 'weight' must be a 4-D integer array "
                             f"[C_in, K, K, C_out] with a square kernel")
        _check_array(owner, "weight", w, w.shape, self.w_bits)
        _check_array(owner, "bias", self.bias, (w.shape[3],), self.b_bits)
        self._check_lanes(owner, w.shape[3], "output channels")
        _check_int(owner, "stride", self.stride, minimum=1)
        _check_int(owner, "padding", self.padding, minimum=0)
        if self.padding >= self.kernel:
            raise MlsnnError(f"{owner}: field 'padding' ({self.padding}) must be smaller than "
                             f"the kernel ({self.kernel})")

    @property
    def in_channels(self):
        return int(self.weight.shape[0])

    @property
    def kernel(self):
        return int(self.weight.shape[1])

    @property
    def out_channels(self):
        return int(self.weight.shape[3])

    def out_shape(self, in_shape):
        _, h, w = in_shape
        return (self.out_channels,
                conv_out_size(h, self.kernel, self.stride, self.padding),
                conv_out_size(w, self.kernel, self.stride, self.padding))

    def fanout_counts(self, in_shape):
        c, h, w = in_shape
        _, ho, wo = self.out_shape(in_shape)
        fy = axis_offsets(h, ho, self.kernel, self.stride, self.padding)
        fx = axis_offsets(w, wo, self.kernel, self.stride, self.padding)
        per_pixel = np.outer([len(k) for k in fy], [len(k) for k in fx]) * self.out_channels
        return np.broadcast_to(per_pixel, (c, h, w)).reshape(-1).astype(np.int64)

    def max_in_weight_sum(self):
        w = np.abs(self.weight.astype(np.int64))
        return int(w.sum(axis=(0, 1, 2)).max(initial=0))

    def energy_fanouts(self, info):
        c, h, w = info.in_shape
        exact = self.fanout_counts(info.in_shape)
        k, s, p = self.kernel, self.stride, self.padding
        # Stride-aligned offsets, borders ignored: k with (i + P − k) ≡ 0 mod S.
        fy = [sum((i + p - o) % s == 0 for o in range(k)) for i in range(h)]
        fx = [sum((i + p - o) % s == 0 for o in range(k)) for i in range(w)]
        aligned = np.broadcast_to(np.outer(fy, fx) * self.out_channels, (c, h, w)).reshape(-1)
        F = self.out_channels * k ** 2
        Fs = self.out_channels * math.ceil(k / s) ** 2
        return exact.astype(np.float64), aligned.astype(np.float64), F, Fs


def _two_inputs(owner, inputs):
    inputs = tuple(inputs) if isinstance(inputs, (list, tuple)) else None
    if inputs is None or len(inputs) != 2 or not all(isinstance(s, str) for s in inputs):
        raise MlsnnError(f"{owner}: field 'inputs' must name exactly two input layers")
    if inputs[0] == inputs[1]:
        raise MlsnnError(f"{owner}: field 'inputs' names '{inputs[0]}' twice")
    return inputs


class _JoinMeta(type):
    """``Join(..., mode=...)`` builds the :class:`Barrier` or :class:`Sew` kind (the IR before
    schema 2 had one join kind with a mode)."""

    def __call__(cls, *args, **kwargs):
        if cls is not Join:
            return super().__call__(*args, **kwargs)
        mode = kwargs.pop("mode", "barrier")
        name = kwargs.get("name", args[0] if args else "?")
        if mode not in ("barrier", "sew"):
            raise MlsnnError(f"layer '{name}': field 'mode' must be 'barrier' or 'sew', "
                             f"not {mode!r}")
        if mode == "sew":
            _sew_args_check(name, kwargs)
        return (Barrier if mode == "barrier" else Sew)(*args, **kwargs)


class Join(Kind, metaclass=_JoinMeta):
    """A residual join of two streams of the same shape: :class:`Barrier` or :class:`Sew`."""

    n_inputs = 2

    @property
    def label(self):
        return f"join-{self.mode}"

    def check_inputs(self, owner, in_shapes, scales, n_streams):
        if tuple(in_shapes[1]) != tuple(in_shapes[0]):
            raise MlsnnError(f"{owner}: field 'inputs' joins shapes {tuple(in_shapes[0])} and "
                             f"{tuple(in_shapes[1])}; they must be equal")


@register
@dataclass(frozen=True, eq=False)
class Barrier(Join):
    """Sparse-ResNet barrier neuron per index j: ``P[j] += z·stream_weights[s]``; own
    ``threshold``, ``levels``, ``v0``; no bias, no weight memory."""

    name: str
    inputs: tuple
    threshold: int = 1
    levels: int = 1
    v0: int = 0
    stream_weights: tuple = (1, 1)
    potential_width: Optional[int] = None
    scale: float = 1.0
    lanes: int = 1
    fire_lanes: Optional[int] = None
    kind = "barrier"
    mode = "barrier"
    hw_core = "hw.join:BarrierCore"
    #: Fields ``network.json`` leaves out while they hold their default (files stay as they
    #: were before barrier joins had lanes).
    omit_default = ("lanes",)

    def __post_init__(self):
        owner = f"layer '{self.name}'"
        _check_name(f"layer {self.name!r}", self.name)
        object.__setattr__(self, "inputs", _two_inputs(owner, self.inputs))
        _check_neuron(owner, self.threshold, self.levels, self.v0)
        sw = tuple(self.stream_weights) if isinstance(self.stream_weights, (list, tuple)) else ()
        if len(sw) != 2:
            raise MlsnnError(f"{owner}: field 'stream_weights' must be two integers")
        sw = tuple(_check_int(owner, "stream_weights", s, minimum=-(1 << 15),
                              maximum=(1 << 15) - 1) for s in sw)
        object.__setattr__(self, "stream_weights", sw)
        if self.potential_width is not None:
            _check_int(owner, "potential_width", self.potential_width, minimum=2, maximum=64)
        object.__setattr__(self, "scale", float(self.scale))
        L = _check_int(owner, "lanes", self.lanes, minimum=1)
        object.__setattr__(self, "lanes", L)
        if L & (L - 1):
            raise MlsnnError(f"{owner}: lanes ({L}) of a barrier join must be a power of two "
                             f"(its events name neurons j = word·L + lane)")
        _check_fire_lanes(owner, self)

    fire = property(_fire)

    def check_inputs(self, owner, in_shapes, scales, n_streams):
        super().check_inputs(owner, in_shapes, scales, n_streams)
        n = int(np.prod(in_shapes[0]))
        if n % self.lanes:
            raise MlsnnError(f"{owner}: lanes ({self.lanes}) must divide its {n} neurons")

    def input_terms(self, z):
        return max(z), sum(zk * abs(w) for zk, w in zip(z, self.stream_weights))

    def golden_map(self, info):
        from .maps import StreamWeightMap
        return StreamWeightMap(self, info)

    def energy_spec(self, info, timesteps):
        return dict(name=self.name, kind="join", inputs=self.inputs, in_shape=info.in_shape,
                    out_shape=info.out_shape, join="barrier", levels=self.levels,
                    p_bits=info.width, a_bits=max(1, (self.levels * timesteps).bit_length()),
                    lanes=self.lanes)


@register
@dataclass(frozen=True, eq=False)
class Sew(Join):
    """SEW-ResNet join, no neuron: the next layer receives the events of both streams (their
    scales must be equal)."""

    name: str
    inputs: tuple
    scale: float = 1.0
    kind = "sew"
    mode = "sew"
    combine = None
    passthrough = True
    hw_core = "hw.join:SewJoin"

    def __post_init__(self):
        owner = f"layer '{self.name}'"
        _check_name(f"layer {self.name!r}", self.name)
        object.__setattr__(self, "inputs", _two_inputs(owner, self.inputs))
        object.__setattr__(self, "scale", float(self.scale))

    def check_inputs(self, owner, in_shapes, scales, n_streams):
        super().check_inputs(owner, in_shapes, scales, n_streams)
        if not math.isclose(scales[0], scales[1], rel_tol=1e-9):
            raise MlsnnError(f"{owner}: a SEW join needs inputs of the same scale, but "
                             f"'{self.inputs[0]}' has {scales[0]:g} and '{self.inputs[1]}' has "
                             f"{scales[1]:g}")

    def input_terms(self, z):
        return sum(z), 0

    def energy_spec(self, info, timesteps):
        return dict(name=self.name, kind="join", inputs=self.inputs, in_shape=info.in_shape,
                    out_shape=info.out_shape, join="sew", levels=0, p_bits=None, a_bits=None)

    @property
    def weight(self):
        return None

    @property
    def bias(self):
        return None


def _sew_args_check(name, kwargs):
    bad = [k for k in ("threshold", "levels", "v0", "stream_weights", "potential_width")
           if k in kwargs]
    if bad:
        raise MlsnnError(f"layer '{name}': a SEW join has no neuron: leave 'stream_weights' "
                         f"and 'potential_width' unset (found '{bad[0]}')")


Barrier.weight = property(lambda self: None)
Barrier.bias = property(lambda self: None)





def _check_coding(owner, layer, earlier):
    """docs/bitserial.md §6: a bit-serial layer reads the network input or a bit-serial
    layer; only a bit-serial dense or conv2d layer reads a bit-serial layer."""
    coding = {l.name: getattr(l, "coding", "rate") for l in earlier}
    mine = getattr(layer, "coding", "rate")
    for src in layer.inputs:
        theirs = coding.get(src, "input")
        if mine == "bitserial" and theirs == "rate":
            raise MlsnnError(f"{owner}: a bit-serial layer must read the network input or a "
                             f"bit-serial layer, not the rate-coded layer '{src}'")
        if theirs == "bitserial" and mine != "bitserial":
            what = layer.kind if not hasattr(layer, "coding") else "rate-coded layer"
            raise MlsnnError(f"{owner}: reads the bit-serial layer '{src}', so it must be a "
                             f"bit-serial dense or conv2d layer, not a {what}")


#: Confidence measures of the input-aware early exit (docs/early-exit.md).
CONFIDENCES = ("margin",)
#: Largest threshold alpha_t of an early exit (the margin of a 64-bit potential fits below it).
MAX_ALPHA = (1 << 62) - 1


@dataclass(frozen=True)
class EarlyExit:
    """Input-aware early exit (seed 004 §3.3, docs/early-exit.md): after timestep t < T the
    inference stops when the margin between the two largest readout potentials is at least
    ``alpha[t - 1]``.

    Members
    -------
    confidence : str
        ``"margin"`` (the only one): largest minus second-largest readout potential.
    alpha : tuple of int
        T − 1 non-negative integer thresholds, in readout-potential units (checked against T
        by :class:`Network`).
    """

    confidence: str = "margin"
    alpha: tuple = ()

    def __post_init__(self):
        owner = "network: field 'early_exit'"
        if self.confidence not in CONFIDENCES or not isinstance(self.confidence, str):
            raise MlsnnError(f"{owner}: 'confidence' must be one of {list(CONFIDENCES)}, not "
                             f"{self.confidence!r}")
        if isinstance(self.alpha, (str, bytes, dict)) or not hasattr(self.alpha, "__iter__"):
            raise MlsnnError(f"{owner}: 'alpha' must be a list of integers, not "
                             f"{self.alpha!r}")
        alpha = tuple(self.alpha)
        for k, a in enumerate(alpha):
            if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
                raise MlsnnError(f"{owner}: alpha[{k}] must be an integer, not {a!r}")
            if not 0 <= a <= MAX_ALPHA:
                raise MlsnnError(f"{owner}: alpha[{k}] must be in 0 .. 2**62 - 1, not {a}")
        object.__setattr__(self, "alpha", tuple(int(a) for a in alpha))

    @classmethod
    def cast(cls, value):
        """``None``, an :class:`EarlyExit` or a JSON-style dict ``{"confidence", "alpha"}``."""
        if value is None or isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise MlsnnError(f"network: field 'early_exit' must be null or an object "
                             f"{{\"confidence\": \"margin\", \"alpha\": [...]}}, not "
                             f"{value!r}")
        unknown = set(value) - {"confidence", "alpha"}
        if unknown:
            raise MlsnnError(f"network: field 'early_exit' has unknown key "
                             f"'{sorted(unknown)[0]}'")
        if "alpha" not in value:
            raise MlsnnError("network: field 'early_exit' is missing 'alpha'")
        return cls(confidence=value.get("confidence", "margin"), alpha=value["alpha"])

    def to_json(self):
        return {"confidence": self.confidence, "alpha": list(self.alpha)}


@dataclass(frozen=True, eq=False)
class LayerInfo:
    """Derived static facts about one layer in its network (see :meth:`Network.info`)."""

    in_shape: tuple          # shape of each input stream
    out_shape: tuple
    n_in: int                # flat input size
    n_out: int               # neurons (flat output size)
    zmax_in: tuple           # max event value per input stream
    zmax_in_index: int       # max total value per input index per timestep (SEW: sum)
    zmax_out: int            # max value of an emitted event (0 for the readout)
    bound: int               # static bound on |P|, |H| (SPEC §3)
    safe_width: int          # potential width that can never overflow
    width: int               # the width in use (forced or safe)
    streams: tuple           # names of the event streams entering (SEW joins expanded)
    stream_src: tuple        # for each stream, the index of the input (0 or 1) it comes from


@dataclass(frozen=True, eq=False)
class Network:
    """An integer multi-level SNN: input, timesteps, layers in topological order.

    Raises
    ------
    MlsnnError
        On any inconsistency; the message names the layer and field.
    """

    input: InputSpec
    timesteps: int
    layers: tuple
    name: str = "network"
    early_exit: Optional[EarlyExit] = None

    def __post_init__(self):
        if not isinstance(self.input, InputSpec):
            raise MlsnnError("network: field 'input' must be an InputSpec")
        _check_int("network", "timesteps", self.timesteps, minimum=1, maximum=1024)
        ee = EarlyExit.cast(self.early_exit)
        object.__setattr__(self, "early_exit", ee)
        if ee is not None and len(ee.alpha) != self.timesteps - 1:
            raise MlsnnError(f"network: field 'early_exit': 'alpha' must have T - 1 = "
                             f"{self.timesteps - 1} entries (one per timestep 1 .. T-1), not "
                             f"{len(ee.alpha)}")
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise MlsnnError("network: field 'layers' must hold at least one layer")
        infos = {}
        shapes = {INPUT: self.input.shape}
        zmax = {INPUT: self.input.zmax}
        scales = {INPUT: self.input.scale}
        streams = {INPUT: (INPUT,)}
        consumers = {INPUT: 0}
        for idx, layer in enumerate(layers):
            if type(layer) not in KINDS.values():
                raise MlsnnError(f"network: layers[{idx}] is not a layer of a registered kind "
                                 f"({', '.join(sorted(KINDS))})")
            owner = f"layer '{layer.name}'"
            if layer.name in shapes:
                raise MlsnnError(f"{owner}: field 'name' is used twice")
            for src in layer.inputs:
                if src not in shapes:
                    raise MlsnnError(f"{owner}: field 'inputs' names '{src}', which is not an "
                                     f"earlier layer or 'input'")
                consumers[src] += 1
            is_last = idx == len(layers) - 1
            if is_last and not layer.can_readout:
                raise MlsnnError(f"{owner}: the readout (the last layer) must be dense or "
                                 f"conv2d, not {layer.kind}")
            if layer.readout != is_last:
                raise MlsnnError(f"{owner}: field 'readout' must be true for the last layer and "
                                 f"only for it")
            _check_coding(owner, layer, layers[:idx])
            in_shape = shapes[layer.inputs[0]]
            z_in = tuple(zmax[s] for s in layer.inputs)
            # Per input index per timestep a SEW-fed layer sees one event of each stream.
            src_streams = sum((streams[s] for s in layer.inputs), ())
            layer.check_inputs(owner, [tuple(shapes[s]) for s in layer.inputs],
                               [scales[s] for s in layer.inputs], len(src_streams))
            out_shape = layer.out_shape(in_shape)
            T = self.timesteps
            z_index, per_t = layer.input_terms(
                tuple(zmax_stream(zmax, streams, s) for s in layer.inputs))
            if layer.passthrough:
                zout = z_index
                bound = safe = width = 0
                streams[layer.name] = src_streams
            else:
                bound = layer.static_bound(T, per_t)
                safe = max(signed_width(bound), layer.width_floor())
                if safe > MAX_POTENTIAL_WIDTH:
                    raise MlsnnError(f"{owner}: its potential needs {safe} bits (static bound "
                                     f"{bound}), more than the {MAX_POTENTIAL_WIDTH} the "
                                     f"hardware supports: lower 'threshold', 'v0' or the "
                                     f"weights")
                forced = getattr(layer, "potential_width", None)
                width = forced if forced is not None else safe
                if getattr(layer, "coding", "rate") == "bitserial" and width < safe:
                    raise MlsnnError(f"{owner}: a bit-serial layer cannot saturate: its "
                                     f"potential_width ({width}) must be at least its safe "
                                     f"width {safe}")
                if not layer.readout and getattr(layer, "threshold", None) is not None and \
                        layer.threshold > (1 << (width - 1)) - 1:
                    raise MlsnnError(f"{owner}: 'threshold' {layer.threshold} can never be "
                                     f"reached by a {width}-bit potential (max "
                                     f"{(1 << (width - 1)) - 1}): widen 'potential_width' or "
                                     f"lower the threshold")
                zout = layer.out_zmax(z_index)
                streams[layer.name] = (layer.name,)
            infos[layer.name] = LayerInfo(
                in_shape=tuple(in_shape), out_shape=tuple(out_shape),
                n_in=math.prod(in_shape), n_out=math.prod(out_shape), zmax_in=z_in,
                zmax_in_index=int(z_index), zmax_out=zout, bound=int(bound),
                safe_width=int(safe), width=int(width), streams=src_streams,
                stream_src=tuple(k for k, s in enumerate(layer.inputs) for _ in streams[s]))
            shapes[layer.name] = out_shape
            zmax[layer.name] = zout
            scales[layer.name] = layer.out_scale(scales[layer.inputs[0]])
            consumers[layer.name] = 0
        for lname, n in consumers.items():
            if n == 0 and lname != layers[-1].name:
                raise MlsnnError(f"layer '{lname}': its output is used by no layer (only the "
                                 f"readout may be a sink)")
        object.__setattr__(self, "_infos", infos)
        if ee is not None and any(getattr(l, "coding", "rate") == "bitserial" for l in layers):
            raise MlsnnError("network: field 'early_exit' with bit-serial layers is not "
                             "supported: a bit-serial layer fires only after all T input "
                             "timesteps, so there is no readout to judge before t = T")
        if ee is not None and infos[layers[-1].name].n_out < 2:
            raise MlsnnError(f"network: field 'early_exit' needs a readout of at least 2 "
                             f"neurons (the margin is between the two largest potentials); "
                             f"'{layers[-1].name}' has {infos[layers[-1].name].n_out}")

    # -- queries ---------------------------------------------------------------------------
    def info(self, name):
        """:class:`LayerInfo` of the layer called ``name``."""
        try:
            return self._infos[name]
        except KeyError:
            raise MlsnnError(f"network has no layer '{name}'") from None

    def emission_order(self, name):
        """The neuron indices of layer ``name`` in the order its core emits them (the sweep
        order of SPEC §3 with docs/lanes.md), or ``None`` for ``j`` ascending: a conv2d layer
        with ``lanes`` L > 1 sweeps words of L output channels, so it emits by channel word
        g, pixel p, lane l: ``j = (g·L + l)·H_out·W_out + p``."""
        layer = self.layer(name)
        lanes = getattr(layer, "lanes", 1)
        if layer.kind != "conv2d" or lanes == 1:
            return None
        c, h, w = self.info(name).out_shape
        g, p, lane = np.meshgrid(np.arange(c // lanes), np.arange(h * w), np.arange(lanes),
                                 indexing="ij")
        return ((g * lanes + lane) * (h * w) + p).reshape(-1).astype(np.int64)

    def layer(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise MlsnnError(f"network has no layer '{name}'")

    def with_fire_lanes(self, fire):
        """The same network with other ``fire_lanes`` (docs/lanes.md): an int for every dense
        and conv2d layer whose lanes it divides, or ``{name: F}`` for some layers (``None``:
        as many fire units as lanes).

        Raises
        ------
        MlsnnError
            An unknown layer, a layer without lanes, F that does not divide its lanes, or an
            int F that divides the lanes of no layer.
        """
        plan = self._lane_plan("fire_lanes", fire,
                               lambda layer: layer.lanes % fire == 0)
        if not plan and not isinstance(fire, dict):
            raise MlsnnError(f"fire_lanes {fire} divides the lanes of no layer")
        return dataclasses.replace(self, layers=tuple(
            dataclasses.replace(layer, fire_lanes=plan[layer.name])
            if layer.name in plan else layer for layer in self.layers))

    def with_fire_lanes_at_most(self, fire):
        """The same network with at most ``fire`` fire units per layer: every dense and conv2d
        layer gets the largest divisor of its lanes not above ``fire`` (so any ``fire`` >= 1
        is valid; a layer with lanes 1 keeps 1)."""
        return self.with_fire_lanes({
            layer.name: max(d for d in range(1, fire + 1) if layer.lanes % d == 0)
            for layer in self.layers if hasattr(layer, "lanes")})

    def _lane_plan(self, field, value, divides):
        """``{name: value}`` of :meth:`with_lanes` / :meth:`with_fire_lanes`: ``value`` itself
        when a dict, else ``value`` on every layer with lanes that ``divides`` accepts. Raises
        :class:`MlsnnError` for an unknown layer or one without lanes."""
        names = {layer.name: layer for layer in self.layers}
        if isinstance(value, dict):
            for name in value:
                if name not in names:
                    raise MlsnnError(f"{field}: network has no layer '{name}'")
                if not hasattr(names[name], "lanes"):
                    raise MlsnnError(f"{field}: layer '{name}' ({names[name].kind}) has no "
                                     f"lanes")
            return dict(value)
        return {layer.name: value for layer in self.layers
                if hasattr(layer, "lanes") and divides(layer)}

    def with_lanes(self, lanes):
        """The same network with other ``lanes`` (docs/lanes.md): an int for every dense and
        conv2d layer and every barrier join it suits (a power of two that divides the join's
        neurons; the others keep theirs), or ``{name: L}`` for some of them.

        Raises
        ------
        MlsnnError
            An unknown layer, a layer without lanes, or lanes that do not divide its outputs.
        """
        def suits(layer):
            if layer.kind != "barrier" or not isinstance(lanes, int) or lanes < 1:
                return True
            return not lanes & (lanes - 1) and self.info(layer.name).n_out % lanes == 0

        plan = self._lane_plan("lanes", lanes, suits)
        layers = []
        for layer in self.layers:
            if layer.name in plan:
                f = layer.fire_lanes     # kept while it divides the new lanes
                layer = dataclasses.replace(
                    layer, lanes=plan[layer.name],
                    fire_lanes=f if f is not None and isinstance(plan[layer.name], int)
                    and plan[layer.name] >= 1 and plan[layer.name] % f == 0 else None)
            layers.append(layer)
        return dataclasses.replace(self, layers=tuple(layers))

    @property
    def readout(self):
        return self.layers[-1]

    @property
    def n_classes(self):
        return self.info(self.readout.name).n_out

    @property
    def is_sequential(self):
        """True when every layer reads the layer just before it and there are no joins."""
        prev = INPUT
        for layer in self.layers:
            if layer.n_inputs != 1 or layer.inputs != (prev,):
                return False
            prev = layer.name
        return True

    def consumers(self, name):
        """Names of the layers that read ``name``."""
        return [l.name for l in self.layers if name in l.inputs]

    def overflow_possible(self):
        """Names of the layers whose potential width was forced below the safe width."""
        return [l.name for l in self.layers if self.info(l.name).width < self.info(l.name).safe_width]

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def check_inputs(self, x):
        """Validate a batch of network inputs ``[B, *shape]``; return it as int64 numpy."""
        x = np.asarray(x)
        shape = self.input.shape
        if x.ndim == len(shape):
            x = x[None]
        if tuple(x.shape[1:]) != tuple(shape):
            raise MlsnnError(f"inputs have shape {tuple(x.shape)}, expected [B, "
                             f"{', '.join(map(str, shape))}] for this network")
        if x.dtype.kind == "f":
            if not np.all(np.isfinite(x)) or not np.all(x == np.round(x)):
                raise MlsnnError("inputs must be integers (pixel values), found non-integer "
                                 "values")
        elif x.dtype.kind not in "iub":
            raise MlsnnError(f"inputs must be integers, not {x.dtype}")
        x = x.astype(np.int64)
        if x.size and int(x.min()) < 0:
            raise MlsnnError(f"inputs must be non-negative, found {int(x.min())}")
        if x.size and int(x.max()) > self.input.zmax:
            raise MlsnnError(f"inputs must fit in in_bits={self.input.in_bits} "
                             f"(max {self.input.zmax}), found {int(x.max())}")
        return x

    # -- serialisation ---------------------------------------------------------------------
    def to_json(self):
        layers = []
        for layer in self.layers:
            d = {"kind": layer.kind}
            for f in dataclasses.fields(layer):
                if f.name in layer.arrays:
                    continue
                v = getattr(layer, f.name)
                if f.name in _OMIT_WHEN_NONE and v is None:
                    continue
                if f.name in getattr(layer, "omit_default", ()) and v == f.default:
                    continue
                d[f.name] = list(v) if isinstance(v, tuple) else v
            if "weight" in layer.arrays:
                d["weight_shape"] = list(layer.weight.shape)
            layers.append(d)
        return {
            "schema": "mlsnn-network", "schema_version": SCHEMA_VERSION, "name": self.name,
            "timesteps": self.timesteps,
            "input": {"shape": list(self.input.shape), "in_bits": self.input.in_bits,
                      "scale": self.input.scale},
            "layers": layers,
            **({"early_exit": self.early_exit.to_json()} if self.early_exit is not None
               else {}),
        }

    def arrays(self):
        out = {}
        for layer in self.layers:
            for a in layer.arrays:
                out[f"{layer.name}.{a}"] = getattr(layer, a)
        return out


def zmax_stream(zmax, streams, name):
    """Max value per input index per timestep coming from ``name`` (a SEW join sums)."""
    return sum(zmax[s] for s in streams[name])


def save(net, directory):
    """Write ``network.json`` and ``network.npz`` into ``directory``; return the json path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "network.json")
    with open(path, "w") as f:
        json.dump(net.to_json(), f, indent=1)
        f.write("\n")
    np.savez(os.path.join(directory, "network.npz"), **net.arrays())
    return path


def _json_type(value):
    """The JSON name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "list", str: "string", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def from_json(doc, arrays):
    """Build a :class:`Network` from a parsed ``network.json`` and its arrays."""
    if not isinstance(doc, dict):
        raise MlsnnError(f"network.json: not an mlsnn network (the top level must be a JSON "
                         f"object with 'schema': 'mlsnn-network', not a "
                         f"{_json_type(doc)})")
    if doc.get("schema") != "mlsnn-network":
        raise MlsnnError("network.json: not an mlsnn network (field 'schema' must be "
                         "'mlsnn-network')")
    ver = doc.get("schema_version")
    if type(ver) is not int or ver not in READ_VERSIONS:
        raise MlsnnError(f"network.json: field 'schema_version' is {json.dumps(ver)}; this "
                         f"mlsnn reads versions {READ_VERSIONS[0]} to {READ_VERSIONS[-1]} "
                         f"(an integer)")
    for key in ("timesteps", "input", "layers"):
        if key not in doc:
            raise MlsnnError(f"network.json: missing field '{key}'")
    inp = doc["input"]
    if not isinstance(inp, dict) or "shape" not in inp:
        raise MlsnnError("network.json: field 'input' must be an object with 'shape'")
    unknown = set(inp) - {"shape", "in_bits", "scale"}
    if unknown:
        raise MlsnnError(f"network.json: field 'input' has unknown key '{sorted(unknown)[0]}'")
    spec = InputSpec(shape=tuple(inp["shape"]) if isinstance(inp["shape"], list)
                     else inp["shape"], **{k: v for k, v in inp.items() if k != "shape"})
    if not isinstance(doc["layers"], list):
        raise MlsnnError("network.json: field 'layers' must be a list")
    layers = []
    seen = {}
    for idx, d in enumerate(doc["layers"]):
        if not isinstance(d, dict):
            raise MlsnnError(f"network.json: layers[{idx}] must be an object")
        if "name" in d:
            _check_name(f"network.json: layers[{idx}]", d["name"])
            if d["name"] in seen:
                raise MlsnnError(f"network.json: layers[{seen[d['name']]}] and layers[{idx}] "
                                 f"are both named '{d['name']}' (layer names must be unique)")
            seen[d["name"]] = idx
        d = dict(d)
        kind = d.pop("kind", None)
        name = d.get("name", f"layers[{idx}]")
        if ver == 1 and kind in ("barrier", "sew"):
            kind = None                 # not schema 1 names
        if ver == 1 and kind == "join":
            # Schema 1: one join kind with a mode; schema 2 has the two kinds.
            if "mode" not in d:
                raise MlsnnError(f"layer '{name}': missing field 'mode' ('barrier' or 'sew')")
            kind = d.pop("mode")
            if kind not in ("barrier", "sew"):
                raise MlsnnError(f"layer '{name}': field 'mode' must be 'barrier' or 'sew', "
                                 f"not {kind!r}")
        kinds = KINDS if ver > 1 else {k: KINDS[k] for k in ("dense", "conv2d", "barrier", "sew")}
        cls = kinds.get(kind) if isinstance(kind, str) else None
        if cls is None:
            allowed = sorted(kinds) if ver > 1 else ["conv2d", "dense", "join"]
            raise MlsnnError(f"network.json: layers[{idx}] field 'kind' must be one of "
                             f"{allowed}, not {kind!r}")
        wshape = d.pop("weight_shape", None)
        allowed = {f.name for f in dataclasses.fields(cls)} - set(cls.arrays)
        unknown = set(d) - allowed
        if unknown:
            raise MlsnnError(f"layer '{name}': unknown field '{sorted(unknown)[0]}'")
        if "inputs" in d:
            if not isinstance(d["inputs"], list):
                raise MlsnnError(f"layer '{name}': field 'inputs' must be a list of layer "
                                 f"names (e.g. [\"input\"]), not a {_json_type(d['inputs'])}")
            d["inputs"] = tuple(d["inputs"])
        if "stream_weights" in d and isinstance(d["stream_weights"], list):
            d["stream_weights"] = tuple(d["stream_weights"])
        for req in ("name", "inputs"):
            if req not in d:
                raise MlsnnError(f"network.json: layers[{idx}] is missing field '{req}'")
        for req in cls.required:
            if req not in d:
                raise MlsnnError(f"layer '{name}': missing field '{req}'")
        if cls.arrays:
            for arr in cls.arrays:
                key = f"{name}.{arr}"
                if key not in arrays:
                    raise MlsnnError(f"network.npz: missing array '{key}'")
                d[arr] = np.asarray(arrays[key])
            if wshape is not None and list(d["weight"].shape) != list(wshape):
                raise MlsnnError(f"layer '{name}': array '{name}.weight' has shape "
                                 f"{tuple(d['weight'].shape)}, network.json says "
                                 f"{tuple(wshape)}")
        try:
            layers.append(cls(**d))
        except TypeError as e:
            raise MlsnnError(f"layer '{name}': {e}") from None
    return Network(input=spec, timesteps=doc["timesteps"], layers=tuple(layers),
                   name=doc.get("name", "network"), early_exit=doc.get("early_exit"))


def load(path):
    """Load a network from ``network.json`` (or its directory) and the ``.npz`` beside it."""
    if os.path.isdir(path):
        path = os.path.join(path, "network.json")
    if os.fspath(path).endswith(".npz"):
        raise MlsnnError(f"{path}: this is the array file; give network.json (or its "
                         f"directory), the .npz beside it is read with it")
    with open(path, encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise MlsnnError(f"{path}: malformed JSON ({e})") from None
        except UnicodeDecodeError:
            raise MlsnnError(f"{path}: not a network.json (a binary file, not JSON text)") \
                from None
    npz = os.path.splitext(path)[0] + ".npz"
    if not os.path.exists(npz):
        raise MlsnnError(f"{path}: the array file {npz} is missing")
    import zipfile
    try:
        # Opened here, not by numpy, which leaks the file when the archive is malformed.
        with open(npz, "rb") as f, np.load(f, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise MlsnnError(f"{npz}: not a readable .npz file ({e})") from None
    return from_json(doc, arrays)



# The kinds defined in modules of their own register themselves on import.
from . import pooling  # noqa: E402,F401
