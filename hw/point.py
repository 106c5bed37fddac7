"""One-target cores: the stages shared by every core whose input events each update exactly one
potential word (:class:`hw.join.BarrierCore`, :class:`hw.pool.PoolCore`).

Design note
===========

A barrier neuron and a pooling layer have fan-out 1: an input event ``(i, z)`` names one
target ``j`` (the barrier: ``j = i``; a pool: ``j = pool_index(i)``) and changes one word of a
potential memory ``P``. What differs between them is in front of the target (how many input
streams, how ``j`` and the operand are found); what follows is the same, and is
:class:`PointEngine`::

    upd (j, operand) ──► M: read P[j] ──► A: P[j] ⊕ operand → write P[j]
    done ──► drain M, A ──► sweep j ascending: read P[j] ──► W1 ──► unit ──► WB: write P'[j];
                                                                              emit (j, z) if z > 0
                                                         ──► EOT ──► o

``⊕`` is the kind's combine: ``"sum"`` (``P + operand``, saturated to the width when the width
was forced narrow) or ``"max"`` (``max(P, operand)``, never saturates). The unit is a
:class:`~hw.neuron.FireUnit` (a neuron kind: own θ, N, v0, bias tied to 0, soft reset, v0 written
at the last timestep) or a :class:`MaxEmit` (a max kind: emits ``(j, M[j])`` and writes 0).

Read-after-write on P
    An update reads P in M and writes it in A, the very next cycle; the read port is
    transparent for the write port. When update u reads P[j] in cycle c, the only earlier
    update not yet in the memory is u−1, which writes in cycle c (A) and is seen by the
    transparent read; every older one wrote at c−1 or before. So back-to-back updates of the
    same j see each other's results, with no forwarding registers and no stall (tested with
    every event on one neuron).

Phases: ``INTEGRATE`` (``integrating`` high: the core in front offers updates), then, once
``done`` is seen (the inputs delivered this timestep's EOT), ``DRAIN`` (until M and A, and the
update input, are empty), ``SWEEP`` (one neuron per cycle while ``o`` is ready: N + 3 cycles,
parallel discharge), ``EOT_OUT`` (one EOT on ``o``), back to ``INTEGRATE`` for the next
timestep. Backpressure on ``o`` holds the unit's output register and, through the unit's
``i.ready``, the sweep counter: no read or write is repeated, so ``p_rd``/``p_wr`` stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH

from .layout import EventKind, index_width, value_width
from .memory import CountedMemory
from .neuron import FireInLayout, FireOutLayout, FireUnit, check_choice, check_int, saturate

__all__ = ["NeuronParams", "MaxEmit", "PointEngine", "UpdateLayout", "Counters",
           "cycle_condition", "drive_counters"]


@dataclass(frozen=True)
class NeuronParams:
    """The neuron of a sum kind's sweep: θ, N, v0 and the fire unit variant
    (:class:`~hw.neuron.FireUnit`'s ``discharge`` and ``pipelined``)."""

    levels: int
    threshold: int
    v0: int = 0
    discharge: str = "parallel"
    pipelined: bool = False

    def __post_init__(self):
        check_int("levels", self.levels, minimum=1)
        check_int("threshold", self.threshold, minimum=1)
        check_int("v0", self.v0)
        check_choice("discharge", self.discharge, ("parallel", "serial"))
        if not isinstance(self.pipelined, bool):
            raise TypeError(f"pipelined must be True or False, not {self.pipelined!r}")


class UpdateLayout(data.StructLayout):
    """One update of :class:`PointEngine`: target ``j`` and the operand combined into P[j]."""

    def __init__(self, index_width, operand_shape):
        super().__init__({"j": unsigned(index_width), "operand": operand_shape})


class Counters:
    """32-bit counters cleared by ``clear``."""

    def __init__(self, m, clear, names):
        self.m, self.clear = m, clear
        self.sig = {n: Signal(COUNTER_WIDTH, name=f"ctr_{n}") for n in names}
        for n, s in self.sig.items():
            with m.If(clear):
                m.d.sync += s.eq(0)

    def count(self, name, cond, inc=1):
        """Add ``inc`` when ``cond``, one cycle later: the increment is registered first, so
        that handshake logic late in the cycle does not also drive a 32-bit adder (the
        counters are exact one cycle after the last event, like the memories')."""
        s = self.sig[name]
        inc = Value.cast(inc)
        pending = Signal(len(inc), name=f"pend_{name}")
        self.m.d.sync += pending.eq(Mux(~self.clear & cond, inc, 0))
        with self.m.If(~self.clear):
            self.m.d.sync += s.eq(s + pending)


def drive_counters(m, core, eng, *, ev, acc, first_cand, input_done):
    """The counters and overflow flag of a one-target core (barrier, pool) around its
    :class:`PointEngine` ``eng``: ``ev`` an accepted input event (one update, fan-out 1), ``acc``
    what it adds to ``syn_acc`` (z, or 1 for a comparison), ``first_cand`` any input handshake
    and ``input_done`` the cycle the core takes its inputs' last EOTs of the timestep (for the
    ``cycles`` bracket). No weights, no biases: ``w_rd`` = ``b_rd`` = 0."""
    T = eng._T
    out_hs = core.o.valid & core.o.ready
    ctr = Counters(m, core.clear, ("ev_in", "ev_out", "syn_updates", "syn_acc", "cycles"))
    ctr.count("ev_in", ev)
    ctr.count("ev_out", out_hs & (core.o.payload.kind == EventKind.EVENT))
    ctr.count("syn_updates", ev)
    ctr.count("syn_acc", ev, acc)
    ctr.count("cycles", cycle_condition(m, T, first_cand, input_done & eng.last_t,
                                        eng.out_last))
    c = ctr.sig
    m.d.comb += [
        core.counters.ev_in.eq(c["ev_in"]),
        core.counters.ev_out.eq(c["ev_out"]),
        core.counters.w_rd.eq(0),
        core.counters.p_rd.eq(eng.p_rd),
        core.counters.p_wr.eq(eng.p_wr),
        core.counters.b_rd.eq(0),
        core.counters.syn_updates.eq(c["syn_updates"]),
        core.counters.syn_acc.eq(c["syn_acc"]),
        core.counters.cycles.eq(c["cycles"]),
        core.counters.saturations.eq(eng.saturations),
        core.overflow.eq(eng.overflow),
    ]


def cycle_condition(m, T, first_cand, input_done, out_last):
    """The ``cycles`` bracket of ``docs/hw-interfaces.md``: from the first input token of an
    inference (``first_cand``: any input handshake) to its T-th output EOT (``out_last``).
    ``input_done`` pulses when the core has taken the inputs' last EOTs of timestep T."""
    started = Signal()
    in_first = Signal()
    flight = Signal(range(3))
    m.d.comb += in_first.eq(first_cand & ~started)
    with m.If(input_done):
        m.d.sync += started.eq(0)
    with m.Elif(first_cand):
        m.d.sync += started.eq(1)
    m.d.sync += flight.eq(flight + in_first - out_last)
    return (flight != 0) | in_first


class MaxEmit(wiring.Component):
    """The sweep stage of a max kind, in place of a fire unit: ``(j, M[j])`` in, ``z = M[j]``
    and ``P' = 0`` out (the maximum restarts at 0 every timestep).

    Timing: a registered stream stage, latency 1 cycle, one neuron per cycle; a stalled output
    holds the stage (``i.ready`` low) without losing or repeating a neuron.

    Parameters
    ----------
    zmax : int
        Largest stored value (>= 1); ``o.payload.z`` is ``value_width(zmax)`` bits.
    potential_width : int
        Width of the stored word (signed, as a fire unit's P).
    index_width : int

    Members
    -------
    i : In(stream.Signature(FireInLayout(index_width, potential_width, 2)))
        ``b`` and ``last`` are ignored.
    o : Out(stream.Signature(FireOutLayout(index_width, potential_width, zmax)))
    """

    def __init__(self, *, zmax, potential_width, index_width):
        self._zmax = check_int("zmax", zmax, minimum=1)
        pw = check_int("potential_width", potential_width, minimum=2)
        iw = check_int("index_width", index_width, minimum=1)
        if zmax > (1 << (pw - 1)) - 1:
            raise ValueError(f"zmax ({zmax}) does not fit the potential width {pw}")
        super().__init__({
            "i": In(stream.Signature(FireInLayout(iw, pw, 2))),
            "o": Out(stream.Signature(FireOutLayout(iw, pw, zmax))),
        })

    latency = 1
    interval = 1

    def elaborate(self, platform):
        m = Module()
        accepted = self.i.valid & self.i.ready
        out = self.o.payload
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(accepted):
            m.d.sync += [self.o.valid.eq(1), out.index.eq(self.i.payload.index),
                         out.z.eq(self.i.payload.p[:value_width(self._zmax)]),
                         out.h.eq(self.i.payload.p), out.p.eq(0)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


class _Phase(enum.Enum, shape=2):
    INTEGRATE = 0
    DRAIN = 1
    SWEEP = 2
    EOT_OUT = 3


class PointEngine(wiring.Component):
    """Potential memory, integrate stages, sweep and EOT of a one-target core (see the module
    design note).

    Timing: one update per cycle sustained, written to P 2 cycles after it is offered on
    ``upd``; after ``done``, a drain of at most 3 cycles and a sweep of N + 3 cycles (parallel
    discharge or :class:`MaxEmit`), then the EOT; backpressure on ``o`` stalls the sweep
    without repeating an access. ``o.valid`` and ``o.payload`` come from the unit's output
    register (gated by the phase register); ``o.ready`` reaches the unit's ``i.ready`` and the
    sweep counter combinationally.

    Parameters
    ----------
    n : int
        Words of P (the core's output neurons).
    timesteps : int
        T.
    potential_width : int
        Width of a P word (signed).
    operand_shape : shape-like
        Shape of ``upd.payload.operand``.
    out_layout : hw.layout.EventLayout
        Payload of ``o``.
    combine : {"sum", "max"}
    neuron : NeuronParams or None
        The sweep's neuron (``combine="sum"``); ``None`` for ``"max"`` (a :class:`MaxEmit`,
        whose largest value is ``zmax``).
    zmax : int
        ``combine="max"``: the largest operand.
    narrow : bool
        The width was forced below the safe width: saturate the sums (``"sum"`` only).

    Members
    -------
    upd : In(stream.Signature(UpdateLayout, always_ready=True))
        Updates, taken whenever valid (the core offers them only while ``integrating``).
    done : In(1)
        The inputs delivered this timestep's EOT (sampled while ``integrating``).
    integrating : Out(1)
        A register: the engine is in its integrate phase.
    last_t : Out(1)
        The current timestep is the inference's last.
    o : Out(stream.Signature(out_layout))
        ``(j, z)`` for z > 0, j ascending, then one EOT, every timestep.
    out_last : Out(1)
        The EOT of the inference's last timestep is taken on ``o`` in this cycle.
    clear : In(1)
    p_rd, p_wr, saturations : Out(32)
    overflow : Out(1)
        Sticky: a sum or the fire unit saturated since ``clear``.
    """

    def __init__(self, *, n, timesteps, potential_width, operand_shape, out_layout,
                 combine="sum", neuron=None, zmax=None, narrow=False):
        self._n = check_int("n", n, minimum=1)
        self._T = check_int("timesteps", timesteps, minimum=1)
        self._pw = check_int("potential_width", potential_width, minimum=2)
        self._combine = check_choice("combine", combine, ("sum", "max"))
        if combine == "sum" and not isinstance(neuron, NeuronParams):
            raise TypeError(f"neuron must be a NeuronParams for combine 'sum', not {neuron!r}")
        if combine == "max":
            if neuron is not None:
                raise TypeError("combine 'max' takes no neuron")
            check_int("zmax", zmax, minimum=1)
        self._neuron, self._zmax = neuron, zmax
        self._narrow = bool(narrow) and combine == "sum"
        self._v0 = neuron.v0 if neuron is not None else 0
        super().__init__({
            "upd": In(stream.Signature(UpdateLayout(index_width(n), operand_shape),
                                       always_ready=True)),
            "done": In(1),
            "integrating": Out(1),
            "last_t": Out(1),
            "o": Out(stream.Signature(out_layout)),
            "out_last": Out(1),
            "clear": In(1),
            "p_rd": Out(COUNTER_WIDTH),
            "p_wr": Out(COUNTER_WIDTH),
            "saturations": Out(COUNTER_WIDTH),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        T, n, pw = self._T, self._n, self._pw

        m.submodules.pmem = pmem = CountedMemory(shape=signed(pw), depth=n,
                                                 init=[self._v0] * n, transparent=True)
        m.d.comb += pmem.clear.eq(self.clear)
        if self._combine == "sum":
            nr = self._neuron
            m.submodules.fire = unit = FireUnit(
                levels=nr.levels, threshold=nr.threshold, potential_width=pw, bias_width=2,
                index_width=index_width(n), v0=nr.v0, discharge=nr.discharge,
                saturate=self._narrow, pipelined=nr.pipelined)
            m.d.comb += unit.clear.eq(self.clear)
        else:
            m.submodules.emit = unit = MaxEmit(zmax=self._zmax, potential_width=pw,
                                               index_width=index_width(n))

        phase = Signal(_Phase)
        t_cur = Signal(range(T))
        last_t = Signal()
        integ = Signal(init=1)      # phase == INTEGRATE, as a register of its own
        m.d.comb += [last_t.eq(t_cur == T - 1), self.last_t.eq(last_t),
                     self.integrating.eq(integ)]

        # -- M: the update registered; read P[j] -------------------------------------------
        op_shape = self.upd.payload.operand.shape()
        m_valid = Signal()
        m_j = Signal(range(n))
        m_op = Signal(op_shape)
        m.d.sync += m_valid.eq(self.upd.valid)
        with m.If(self.upd.valid):
            m.d.sync += [m_j.eq(self.upd.payload.j), m_op.eq(self.upd.payload.operand)]

        # -- A: P ⊕ operand, write P ---------------------------------------------------------
        a_valid = Signal()
        a_j = Signal(range(n))
        a_op = Signal(op_shape)
        m.d.sync += a_valid.eq(m_valid)
        with m.If(m_valid):
            m.d.sync += [a_j.eq(m_j), a_op.eq(m_op)]
        a_new = Signal(signed(pw))
        a_sat = Signal()
        if self._combine == "sum":
            saturate(m, pmem.rd_data + a_op, a_new, a_sat, enabled=self._narrow)
        else:
            m.d.comb += a_new.eq(Mux(pmem.rd_data > a_op, pmem.rd_data, a_op))

        # -- sweep: read P[j] → W1 → unit → write back, emit ---------------------------------
        s_j = Signal(range(n + 1))
        w1_valid = Signal()
        w1_j = Signal(range(n))
        s_issue = Signal()
        m.d.comb += s_issue.eq((phase == _Phase.SWEEP) & (s_j != n)
                               & (~w1_valid | unit.i.ready))
        with m.If(s_issue):
            m.d.sync += [w1_valid.eq(1), w1_j.eq(s_j), s_j.eq(s_j + 1)]
        with m.Elif(unit.i.ready):
            m.d.sync += w1_valid.eq(0)
        m.d.comb += [
            unit.i.valid.eq(w1_valid),
            unit.i.payload.index.eq(w1_j),
            unit.i.payload.p.eq(pmem.rd_data),
            unit.i.payload.b.eq(0),
            unit.i.payload.last.eq(last_t),
        ]
        with m.If(phase == _Phase.SWEEP):
            m.d.comb += [pmem.rd_addr.eq(s_j), pmem.rd_en.eq(s_issue)]
        with m.Else():
            m.d.comb += [pmem.rd_addr.eq(m_j), pmem.rd_en.eq(m_valid)]

        emit = unit.o.payload.z != 0
        wb = Signal()
        wb_count = Signal(range(n))
        m.d.comb += [
            unit.o.ready.eq((phase == _Phase.SWEEP) & (~emit | self.o.ready)),
            wb.eq(unit.o.valid & unit.o.ready),
        ]
        with m.If(wb):
            m.d.comb += [pmem.wr_addr.eq(unit.o.payload.index), pmem.wr_data.eq(unit.o.payload.p),
                         pmem.wr_en.eq(1)]
        with m.Else():
            m.d.comb += [pmem.wr_addr.eq(a_j), pmem.wr_data.eq(a_new), pmem.wr_en.eq(a_valid)]

        with m.If(phase == _Phase.EOT_OUT):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.kind.eq(EventKind.EOT)]
        with m.Else():
            m.d.comb += [
                self.o.valid.eq(unit.o.valid & emit & (phase == _Phase.SWEEP)),
                self.o.payload.kind.eq(EventKind.EVENT),
                self.o.payload.index.eq(unit.o.payload.index),
                self.o.payload.value.eq(unit.o.payload.z),
            ]
        m.d.comb += self.out_last.eq(self.o.valid & self.o.ready & (phase == _Phase.EOT_OUT)
                                     & last_t)

        # -- phases ---------------------------------------------------------------------------
        with m.Switch(phase):
            with m.Case(_Phase.INTEGRATE):
                with m.If(self.done):
                    m.d.sync += [phase.eq(_Phase.DRAIN), integ.eq(0)]
            with m.Case(_Phase.DRAIN):
                with m.If(~self.upd.valid & ~m_valid & ~a_valid):
                    m.d.sync += phase.eq(_Phase.SWEEP)
            with m.Case(_Phase.SWEEP):
                with m.If(wb):
                    m.d.sync += wb_count.eq(wb_count + 1)
                    with m.If(wb_count == n - 1):
                        m.d.sync += [phase.eq(_Phase.EOT_OUT), wb_count.eq(0)]
            with m.Case(_Phase.EOT_OUT):
                with m.If(self.o.ready):
                    m.d.sync += [phase.eq(_Phase.INTEGRATE), integ.eq(1), s_j.eq(0),
                                 t_cur.eq(Mux(last_t, 0, t_cur + 1))]

        # -- counters and flag ----------------------------------------------------------------
        ctr = Counters(m, self.clear, ("saturations",))
        ctr.count("saturations", a_valid & a_sat)
        ovf = Signal()
        with m.If(self.clear):
            m.d.sync += ovf.eq(0)
        with m.Elif(a_valid & a_sat):
            m.d.sync += ovf.eq(1)
        if self._combine == "sum":
            m.d.comb += [self.overflow.eq(ovf | unit.overflow),
                         self.saturations.eq(ctr.sig["saturations"] + unit.saturations)]
        else:
            m.d.comb += [self.overflow.eq(ovf), self.saturations.eq(ctr.sig["saturations"])]
        m.d.comb += [self.p_rd.eq(pmem.reads), self.p_wr.eq(pmem.writes)]
        return m
