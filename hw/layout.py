"""Stream payloads, counter names and the static geometry of a layer core.

Everything here is pure Python (no hardware state): the ``data.StructLayout``\\ s that travel
over ``lib.stream`` between cores (``docs/hw-interfaces.md``), the counter order shared by the
layer cores, the network top, the testbenches and the CLI, and :class:`LayerGeometry`, which turns
an IR layer into the numbers its address generator needs (the fan-out table) and serves as the
Python model of that generator in the tests.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from golden.counters import HW_COUNTERS as COUNTERS
from golden.ir import Conv2d, Dense, axis_offsets

__all__ = [
    "EventKind", "EventLayout", "ResultLayout", "COUNTERS", "COUNTER_STRIDE", "CTR_LATENCY",
    "index_width", "value_width", "LayerGeometry",
]

#: ``COUNTERS`` (imported from :mod:`golden.counters`): the counter order within a layer
#: (``docs/hw-interfaces.md``): the golden counters of SPEC §5, the two the hardware adds, the
#: word counters, ``shifts`` (at most ``COUNTER_STRIDE``).
#: Counter address stride per layer on the network top (``ctr_addr = layer * 16 + counter``).
COUNTER_STRIDE = 16
#: Cycles from ``NetworkTop.ctr_addr`` to ``ctr_data``: ``ctr_data`` shows the counter addressed
#: two clock edges earlier (the counter read is pipelined, like a block RAM with an output
#: register).
CTR_LATENCY = 2


class EventKind(enum.Enum, shape=2):
    """What a token on an event stream means."""
    EVENT = 0     #: ``(index, value)``: neuron ``index`` emitted ``value`` (1..N) spikes
    EOT = 1       #: end of timestep; ``index`` and ``value`` are don't-care
    READOUT = 2   #: readout potential of neuron ``index`` (signed ``value``), after timestep T


def index_width(n):
    """Bits of an index into ``n`` items (at least 1)."""
    return max(1, (int(n) - 1).bit_length())


def value_width(vmax):
    """Bits of an unsigned value in ``[0, vmax]`` (at least 1)."""
    return max(1, int(vmax).bit_length())


class EventLayout(data.StructLayout):
    """Payload of an event stream (SPEC §4): ``{kind, index, value}``.

    Parameters
    ----------
    index_width : int
        Width of the neuron index.
    value_width : int
        Width of the value: spike count (unsigned) or readout potential (signed).
    signed_value : bool
        ``True`` for streams that carry readout potentials.
    """

    def __init__(self, index_width, value_width, *, signed_value=False):
        for name, v in (("index_width", index_width), ("value_width", value_width)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self.index_width = index_width
        self.value_width = value_width
        self.signed_value = bool(signed_value)
        super().__init__({
            "kind": EventKind,
            "index": unsigned(index_width),
            "value": signed(value_width) if signed_value else unsigned(value_width),
        })

    def pack(self, kind, index=0, value=0):
        """The payload as an integer (for Verilog-level testbenches)."""
        vmask = (1 << self.value_width) - 1
        if self.signed_value:           # wrap into the signed range as the field would
            value = ((value & vmask) ^ (1 << (self.value_width - 1))) - \
                (1 << (self.value_width - 1))
        else:
            value &= vmask
        return self.const({"kind": EventKind(kind), "index": index, "value": value}).as_bits()

    def unpack(self, word):
        """``(kind, index, value)`` from an integer payload."""
        c = self.from_bits(word)
        return int(c.kind.value), c.index, c.value


class ResultLayout(data.StructLayout):
    """Payload of the network's ``result`` stream: ``{index, potential, last}``."""

    def __init__(self, index_width, potential_width):
        self.index_width = index_width
        self.potential_width = potential_width
        super().__init__({
            "index": unsigned(index_width),
            "potential": signed(potential_width),
            "last": unsigned(1),
        })

    def unpack(self, word):
        c = self.from_bits(word)
        return c.index, c.potential, c.last


def _axis_table(size_in, size_out, kernel, stride, padding):
    """Per input coordinate: (first valid kernel offset, its output coordinate, count).

    Valid offsets k satisfy ``o*S - P + k = i`` with ``0 <= o < size_out``; they form the
    arithmetic progression ``k0, k0 + S, ...`` with outputs ``o0, o0 - 1, ...``.
    """
    table = []
    for i, ks in enumerate(axis_offsets(size_in, size_out, kernel, stride, padding)):
        if ks:
            table.append((ks[0], (i + padding - ks[0]) // stride, len(ks)))
        else:
            table.append((0, 0, 0))
    return table


@dataclass(frozen=True)
class LayerGeometry:
    """Static facts of a dense or conv2d layer that its core's address generator needs.

    A dense layer is treated as a 1×1 convolution over a 1×1 image with ``C_in = N_in`` and
    ``C_out = N_out``, so one generator serves both kinds. For input ``i`` the generator walks
    ``a < ny`` (kernel row ``ky = ky0 + a*S``), ``b < nx`` (``kx = kx0 + b*S``) and
    ``co < C_out`` (innermost), i.e. the SPEC order "ky, kx, co ascending", with

    * weight address ``w_base[i] + a*S*K*C_out + b*S*C_out + co``
    * neuron index ``j_base[i] - a*W_out - b + co*H_out*W_out``
    """

    kind: str
    n_in: int
    n_out: int
    c_out: int
    kernel: int
    stride: int
    w_out: int
    hw_out: int
    w_base: tuple
    j_base: tuple
    ny: tuple
    nx: tuple

    @classmethod
    def of(cls, layer, info):
        if isinstance(layer, Dense):
            n_in, n_out = layer.in_features, layer.out_features
            return cls(kind="dense", n_in=n_in, n_out=n_out, c_out=n_out, kernel=1, stride=1,
                       w_out=1, hw_out=1, w_base=tuple(i * n_out for i in range(n_in)),
                       j_base=(0,) * n_in, ny=(1,) * n_in, nx=(1,) * n_in)
        if isinstance(layer, Conv2d):
            c, h, w = info.in_shape
            co, ho, wo = info.out_shape
            k, s, p = layer.kernel, layer.stride, layer.padding
            ty = _axis_table(h, ho, k, s, p)
            tx = _axis_table(w, wo, k, s, p)
            w_base, j_base, ny, nx = [], [], [], []
            for ci in range(c):
                for yi in range(h):
                    for xi in range(w):
                        ky0, yo0, cy = ty[yi]
                        kx0, xo0, cx = tx[xi]
                        w_base.append(((ci * k + ky0) * k + kx0) * co)
                        j_base.append(yo0 * wo + xo0)
                        ny.append(cy)
                        nx.append(cx)
            return cls(kind="conv2d", n_in=c * h * w, n_out=co * ho * wo, c_out=co, kernel=k,
                       stride=s, w_out=wo, hw_out=ho * wo, w_base=tuple(w_base),
                       j_base=tuple(j_base), ny=tuple(ny), nx=tuple(nx))
        raise TypeError(f"layer must be a golden.ir.Dense or golden.ir.Conv2d, not "
                        f"{type(layer).__name__}")

    @property
    def w_step_b(self):
        return self.stride * self.c_out

    @property
    def w_step_a(self):
        return self.stride * self.kernel * self.c_out

    def words(self, lanes):
        """The geometry of the same layer in words of ``lanes`` output channels: ``c_out``,
        ``n_out`` and the weight addresses divided by ``lanes`` (which must divide
        ``c_out``), so the generator walks word addresses; a neuron ``co·H_out·W_out + pix``
        is lane ``co % lanes`` of word ``(co // lanes)·H_out·W_out + pix``."""
        if self.c_out % lanes:
            raise ValueError(f"lanes ({lanes}) must divide c_out ({self.c_out})")
        if lanes == 1:
            return self
        return dataclasses.replace(self, n_out=self.n_out // lanes, c_out=self.c_out // lanes,
                                   w_base=tuple(b // lanes for b in self.w_base))

    @property
    def max_ny(self):
        return max(self.ny, default=0)

    @property
    def max_nx(self):
        return max(self.nx, default=0)

    def fanout(self, i):
        """``[(w_addr, j), ...]`` for input ``i`` in the generator's order (the Python model)."""
        out = []
        for a in range(self.ny[i]):
            for b in range(self.nx[i]):
                for co in range(self.c_out):
                    out.append((self.w_base[i] + a * self.w_step_a + b * self.w_step_b + co,
                                self.j_base[i] - a * self.w_out - b + co * self.hw_out))
        return out

    def fanout_counts(self):
        return np.array([self.ny[i] * self.nx[i] * self.c_out for i in range(self.n_in)],
                        dtype=np.int64)
