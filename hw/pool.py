"""Pooling core for the ``maxpool2d`` and ``avgpool2d`` kinds (:mod:`golden.pooling`).

Design note
===========

A k×k, stride-k pool that tiles its ``(C, H, W)`` input gives every input index ``i`` exactly
one target ``j = pool_index(i)``, so it is a one-target core like the barrier neuron: an index
map in front of the shared :class:`hw.point.PointEngine`::

    i ──► map: j = pool_index(i) ──► R (j, z) ──► engine: N read P[j] ──► X ──► A write P[j] ⊕ z
                                                  sweep ──► FireUnit | MaxEmit ──► Q ──► o

The index map
    * ``k == 1`` or a single output: ``j = i`` or ``j = 0`` (wiring).
    * H, W and k powers of two: ``i = (c·H + y)·W + x`` is the bit string ``c | y | x`` and
      ``j`` is ``c | y >> log2 k | x >> log2 k`` — a bit selection, exact, no memory.
    * otherwise a ROM ``pool_map`` (depth N_in, ``index_width(N_out)`` bits, synchronous read,
      addressed by the input payload, read every cycle: its data is used only in the cycle
      after a handshake). Its output goes into R, whose j loads the engine's N register and P's
      read address register: no path crosses two memories (the Fmax rule of :mod:`hw.layer`).
    Every variant takes the same two cycles from the handshake to N, so the timing does not
    depend on the shape.

avgpool2d: ``P[j] ← P[j] + z`` (saturated, overflow flag and ``saturations`` counter when the
width was forced narrow), then the sweep through a :class:`~hw.neuron.FireUnit` with the
layer's θ, N, v0 and bias 0 (soft reset, v0 at the last timestep), ``pipelined=True`` as in
:mod:`hw.layer`: P's read data goes into a register, not through the N comparators (iCE40 UP5K:
42 MHz instead of 29 for a 1152-input pool, N = 4). maxpool2d: ``M[j] ←
max(M[j], z)``, the sweep emits ``(j, M[j])`` for M[j] > 0 through a :class:`~hw.point.MaxEmit`
and writes 0 — no fire unit, whose N comparators would be ``zmax`` wide and many (zmax can be
65535 behind a 16-bit input). M is stored in the IR's width (``signed_width(zmax)``).

Read-after-write on P: the engine reads in N and writes in A, two cycles later, with the
forwarding of the layer core (:class:`hw.stages.Accumulate`): back-to-back events on one j are
exact with no stall.

Early exit (``early_exit=True``, docs/early-exit.md): on ``exit`` (between two timesteps, the
core idle) an avgpool runs its engine's exit sweep (every P[j] read, v0 written, nothing
emitted: one ``p_rd`` and ``p_wr`` per output); a maxpool keeps nothing across timesteps (its
sweep wrote 0 to every M[j]), so it only returns its timestep counter to 0 and accesses
nothing.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.ir import LayerInfo
from golden.pooling import AvgPool2d, MaxPool2d, pool_index

from .layer import CounterLayout, check_v0
from .layout import EventKind, EventLayout, index_width, value_width
from .memory import MemorySpec
from .neuron import check_choice, check_int, fire_timing
from .cores import CoreFactory, SingleInput
from .point import MaxEmit, NeuronParams, PointEngine, drive_counters

__all__ = ["PoolCore", "index_map_kind"]


def _log2(v):
    return v.bit_length() - 1 if v > 0 and v & (v - 1) == 0 else None


def index_map_kind(info, kernel):
    """How the core finds ``j`` from ``i``: ``"identity"``, ``"zero"``, ``"bits"`` (a bit
    selection) or ``"rom"`` (a table of N_in entries)."""
    _, h, w = info.in_shape
    if kernel == 1:
        return "identity"
    if info.n_out == 1:
        return "zero"
    if None not in (_log2(h), _log2(w), _log2(kernel)):
        return "bits"
    return "rom"


class PoolCore(CoreFactory, SingleInput, wiring.Component):
    """Event-driven core of one ``maxpool2d`` or ``avgpool2d`` layer.

    Timing: one event per cycle sustained; an event's potential write comes
    :attr:`update_latency` (4) cycles after it was accepted on ``i``; an EOT accepted by an idle
    core comes out :attr:`eot_latency` cycles later (no stall: N_out + 7 for maxpool, N_out + 9
    for avgpool with ``discharge="parallel"``, whose fire unit is the pipelined one of the layer
    cores), two cycles more when an event was accepted right before the EOT (the drain); both
    measured by tests/test_hw_pool.py. Backpressure on ``o`` stalls the sweep without repeating
    an access. ``i.ready``, ``o.valid`` and ``o.payload`` are registers, and ``o.ready`` only
    pops the output register (the credit-counted sweep of :class:`hw.stages.Sweep`, as in the
    layer core). See the module's design note.

    Parameters
    ----------
    layer : golden.pooling.MaxPool2d or golden.pooling.AvgPool2d
    info : golden.ir.LayerInfo
        ``net.info(layer.name)``.
    timesteps : int
        T.
    discharge : {"parallel", "serial"}
        Fire unit variant (avgpool; maxpool has none).
    early_exit : bool
        Take part in the early exit (docs/early-exit.md): ``exit`` and ``exiting`` ports.

    Members
    -------
    i : In(stream.Signature(EventLayout(index_width(N_in), value_width(zmax_in_index))))
        EVENT and EOT tokens.
    o : Out(stream.Signature(EventLayout(index_width(N_out), value_width(zmax_out))))
        Events ``(j, z)`` in sweep order (j ascending) and one EOT per timestep.
    clear : In(1)
    counters : Out(CounterLayout)
        Same layout as :class:`~hw.layer.LayerCore`; ``w_rd`` and ``b_rd`` stay 0.
    overflow : Out(1)
        Sticky: a potential saturated (avgpool with a forced narrow width only).
    exit : In(1)
        Only with ``early_exit``: pulse between two timesteps (the core idle, its input empty)
        to end the inference (see the module's design note); the core then takes the next
        inference's tokens.
    exiting : Out(1)
        Only with ``early_exit``: the avgpool's exit sweep is running (a register; maxpool 0).

    Raises
    ------
    TypeError, ValueError
        ``layer must be a golden.pooling.MaxPool2d or AvgPool2d, not Dense``, a v0 that does
        not fit the width, bad ``timesteps`` or ``discharge``.
    """

    def __init__(self, *, layer, info, timesteps, discharge="parallel", early_exit=False):
        self._validate(layer=layer, info=info, timesteps=timesteps, discharge=discharge)
        self._layer, self._info, self._T = layer, info, timesteps
        self._discharge = discharge
        self._early_exit = bool(early_exit)
        self._max = isinstance(layer, MaxPool2d)
        self._narrow = info.width < info.safe_width
        self.in_layout = EventLayout(index_width(info.n_in), value_width(info.zmax_in_index))
        self.out_layout = EventLayout(index_width(info.n_out), value_width(info.zmax_out))
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
            "clear": In(1),
            "counters": Out(CounterLayout()),
            "overflow": Out(1),
            **({"exit": In(1), "exiting": Out(1)} if self._early_exit else {}),
        })

    @staticmethod
    def _validate(*, layer, info, timesteps, discharge):
        if not isinstance(layer, (MaxPool2d, AvgPool2d)):
            raise TypeError(f"layer must be a golden.pooling.MaxPool2d or AvgPool2d, not "
                            f"{type(layer).__name__}")
        if not isinstance(info, LayerInfo):
            raise TypeError(f"info must be a golden.ir.LayerInfo, not {type(info).__name__}")
        check_int("timesteps", timesteps, minimum=1)
        check_choice("discharge", discharge, ("parallel", "serial"))
        check_v0(layer, info)

    OPTIONS = ("discharge",)        # from_network: a pool has no synapses

    @classmethod
    def memories(cls, net, name):
        """The memories the core of layer ``name`` builds (:class:`hw.memory.MemorySpec`):
        ``pmem`` (avgpool: potentials; maxpool: the window maxima of the timestep) and, when
        the index map is not wiring (:func:`index_map_kind`), the ROM ``pool_map``."""
        layer, info = net.layer(name), net.info(name)
        what = "window maxima" if isinstance(layer, MaxPool2d) else "potentials"
        specs = [MemorySpec("pmem", info.n_out, info.width, False, what)]
        if index_map_kind(info, layer.kernel) == "rom":
            specs.append(MemorySpec("pool_map", info.n_in, index_width(info.n_out), True,
                                    "pool index map"))
        return specs

    @property
    def layer(self):
        return self._layer

    @property
    def narrow(self):
        return self._narrow

    @property
    def update_latency(self):
        """Cycles from accepting an event on ``i`` to the write of its target's P (the index
        map R, then the engine's N read, X and A write)."""
        return 4

    @property
    def eot_latency(self):
        """Cycles from accepting an EOT (idle core) to the cycle the core offers its own EOT
        on ``o`` (never stalled): the EOT flag, the drain, the sweep's first read and W1, the
        N_out neurons through the fire unit (or MaxEmit) one every ``interval`` cycles and its
        latency, then the EOT phase."""
        if self._max:
            lat, interval = MaxEmit.latency, MaxEmit.interval
        else:
            lat, interval = fire_timing(discharge=self._discharge, levels=self._layer.levels,
                                        pipelined=True)
        return 7 + lat + (self._info.n_out - 1) * interval

    def _index_map(self, m, index, load):
        """``j`` of the event whose index is on ``index`` in the cycle ``load`` is high, one
        cycle later (a register or the ROM's read data)."""
        info, k = self._info, self._layer.kernel
        jw = index_width(info.n_out)
        mode = index_map_kind(info, k)
        if mode == "rom":
            m.submodules.pool_map = table = Memory(
                shape=unsigned(jw), depth=info.n_in,
                init=[int(j) for j in pool_index(info.in_shape, k)])
            rp = table.read_port()
            m.d.comb += rp.addr.eq(index)       # en stays 1: see the design note
            return rp.data
        if mode == "identity":
            j = index
        elif mode == "zero":
            j = Const(0, jw)
        else:
            _, h, w = info.in_shape
            a, b, s = _log2(w), _log2(h), _log2(k)
            j = Cat(index[s:a], index[a + s:a + b], index[a + b:])
        r_j = Signal(jw)
        with m.If(load):
            m.d.sync += r_j.eq(j)
        return r_j

    def elaborate(self, platform):
        m = Module()
        layer, info, T = self._layer, self._info, self._T
        zw = self.in_layout.value_width
        if self._max:
            eng = PointEngine(n=info.n_out, timesteps=T, potential_width=info.width,
                              operand_shape=unsigned(zw), out_layout=self.out_layout,
                              combine="max", zmax=max(1, info.zmax_out),
                              early_exit=self._early_exit)
        else:
            eng = PointEngine(n=info.n_out, timesteps=T, potential_width=info.width,
                              operand_shape=unsigned(zw), out_layout=self.out_layout,
                              combine="sum",
                              neuron=NeuronParams(levels=layer.levels,
                                                  threshold=layer.threshold, v0=layer.v0,
                                                  discharge=self._discharge, pipelined=True),
                              narrow=self._narrow, early_exit=self._early_exit)
        m.submodules.engine = eng
        m.d.comb += eng.clear.eq(self.clear)
        if self._early_exit:
            m.d.comb += [eng.exit.eq(self.exit), self.exiting.eq(eng.exiting)]
        wiring.connect(m, wiring.flipped(self.o), eng.o)

        # -- input: events while integrating, until this timestep's EOT ------------------------
        eot = Signal()
        m.d.comb += self.i.ready.eq(eng.integrating & ~eot)
        hs = self.i.valid & self.i.ready
        p = self.i.payload
        ev = hs & (p.kind == EventKind.EVENT)
        done = Signal()
        m.d.comb += [done.eq(eng.integrating & eot), eng.done.eq(eot)]
        with m.If(hs & (p.kind == EventKind.EOT)):
            m.d.sync += eot.eq(1)
        with m.Elif(done):
            m.d.sync += eot.eq(0)

        # -- R: the target from the index map, z registered; the engine's M registers both --
        r_valid = Signal()
        r_z = Signal(zw)
        m.d.sync += r_valid.eq(ev)
        with m.If(ev):
            m.d.sync += r_z.eq(p.value)
        r_j = self._index_map(m, p.index, ev)
        m.d.comb += [eng.upd.valid.eq(r_valid), eng.upd.payload.j.eq(r_j),
                     eng.upd.payload.operand.eq(r_z)]

        # -- counters -------------------------------------------------------------------------
        drive_counters(m, self, eng, ev=ev, acc=1 if self._max else p.value, first_cand=hs,
                       input_done=done)
        return m
