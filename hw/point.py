"""One-target cores: the stages shared by every core whose input events each update exactly one
potential word (:class:`hw.join.BarrierCore`, :class:`hw.pool.PoolCore`).

Design note
===========

A barrier neuron and a pooling layer have fan-out 1: an input event ``(i, z)`` names one
target ``j`` (the barrier: ``j = i``; a pool: ``j = pool_index(i)``) and changes one word of a
potential memory ``P``. What differs between them is in front of the target (how many input
streams, how ``j`` and the operand are found); what follows is the same, and is
:class:`PointEngine`::

    upd (j, operand) ──► N: read P[j] ──► X ──► A: P[j] ⊕ operand → write P[j]
    done ──► drain N, X, A ──► sweep j ascending: read P[j] ──► W1 ──► unit ──► WB: write P'[j];
                                                                   emit (j, z) if z > 0 ──► Q ──► o
                                                  ──► EOT ──► Q ──► o

``⊕`` is the kind's combine: ``"sum"`` (``P + operand``, saturated to the width when the width
was forced narrow) or ``"max"`` (``max(P, operand)``, never saturates). The unit is a
:class:`~hw.neuron.FireUnit` (a neuron kind: own θ, N, v0, bias tied to 0, soft reset, v0 written
at the last timestep) or a :class:`MaxEmit` (a max kind: emits ``(j, M[j])`` and writes 0).

N is the engine's own register of the update; X, A and W1 are :class:`hw.stages.Accumulate`
and everything after the drain is :class:`hw.stages.Sweep` — the very components of the layer
core (:mod:`hw.layer`), so read-after-write forwarding, the credit-counted sweep, the
write-back, the output queue and the overflow logic exist once. P's read address is a
register loaded one cycle ahead (the update's target, or the sweep's next neuron).

Phases: integrating (``integrating`` high: the core in front offers updates), then, once
``done`` is seen (the inputs delivered this timestep's EOT), the drain (until the update input,
N, X and A are empty), the sweep (one neuron per cycle while Q has credits), the EOT into Q,
and integrating again for the next timestep. Backpressure on ``o`` holds the sweep through the
credits: no read or write is repeated, so ``p_rd``/``p_wr`` stay exact.

Early exit (``early_exit=True``, docs/early-exit.md): ``exit`` pulses between two timesteps
(the engine idle). A neuron kind then runs the exit sweep of :class:`hw.stages.Sweep` (every
P[j] read and v0 written, nothing emitted, no EOT; no update is taken meanwhile); a max kind
keeps nothing in P across timesteps (its sweep wrote 0), so it only returns its timestep
counter to 0 and accesses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH

from .layer import pack_lanes
from .layout import EventKind, index_width, value_width
from .memory import CountedMemory
from .neuron import FireInLayout, FireOutLayout, FireUnit, check_choice, check_int
from .stages import Accumulate, Counters, Sweep, cycle_condition, sweep_index_width

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


def drive_counters(m, core, eng, *, ev, acc, first_cand, input_done):
    """The counters and overflow flag of a one-target core (barrier, pool) around its
    :class:`PointEngine` ``eng``: ``ev`` an accepted input event (one update, fan-out 1), ``acc``
    what it adds to ``syn_acc`` (z, or 1 for a comparison), ``first_cand`` any input handshake
    and ``input_done`` the cycle the core takes its inputs' last EOTs of the timestep (for the
    ``cycles`` bracket; an exited inference ends with the engine's exit). No weights, no
    biases: ``w_rd`` = ``b_rd`` = 0."""
    T = eng._T
    inf_done, inf_last = input_done & eng.last_t, eng.out_last
    if eng._early_exit:
        inf_done, inf_last = inf_done | eng.exit, inf_last | eng.exit_end
    out_hs = core.o.valid & core.o.ready
    ctr = Counters(m, core.clear, ("ev_in", "ev_out", "syn_updates", "syn_acc", "cycles"))
    ctr.count("ev_in", ev)
    ctr.count("ev_out", out_hs & (core.o.payload.kind == EventKind.EVENT))
    ctr.count("syn_updates", ev)
    ctr.count("syn_acc", ev, acc)
    ctr.count("cycles", cycle_condition(m, T, first_cand, inf_done, inf_last))
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
        core.counters.w_rd_words.eq(0),                 # no weight memory
        core.counters.p_rd_words.eq(eng.p_rd_words),
        core.counters.p_wr_words.eq(eng.p_wr_words),
        core.counters.shifts.eq(0),                     # no doubling sweeps (bit-serial only)
        core.overflow.eq(eng.overflow),
    ]


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


class PointEngine(wiring.Component):
    """Potential memory, integrate stages, sweep and EOT of a one-target core (see the module
    design note).

    Timing: one update per cycle sustained, written to P 3 cycles after it is offered on
    ``upd``; after ``done``, a drain of at most 4 cycles, the sweep (one neuron per cycle with
    the parallel fire unit or :class:`MaxEmit`), then the EOT through Q; backpressure on ``o``
    stalls the sweep without repeating an access. ``o.valid`` and ``o.payload`` are registers
    (Q's output register); ``o.ready`` only pops it.

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
    early_exit : bool
        Add ``exit``, ``exiting`` and ``exit_end`` (see the module's design note).
    lanes : int
        L, a power of two (``combine="sum"`` only, docs/lanes.md): P holds ``n / L`` words of
        L potentials (neuron ``j`` is lane ``j mod L`` of word ``j div L``); an update reads
        and writes its neuron's word, the operand in its lane and 0 in the others; the sweep
        handles a word per cycle.
    fire : int or None
        F fire units (a divisor of L): the sweep takes the words in groups of F lanes
        (:class:`hw.stages.Sweep`); ``None``: L.

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
        ``p_rd`` and ``p_wr`` per neuron (SPEC §5: an update one, a swept word L).
    p_rd_words, p_wr_words : Out(32)
        Word accesses of P.
    overflow : Out(1)
        Sticky: a sum or the fire unit saturated since ``clear``.
    exit : In(1)
        Only with ``early_exit``: pulse while idle between timesteps to end the inference.
    exiting : Out(1)
        Only with ``early_exit``: the exit sweep is running (a register; a max kind: 0).
    exit_end : Out(1)
        Only with ``early_exit``: the exit sweep's last write-back (a max kind: ``exit``).
    """

    def __init__(self, *, n, timesteps, potential_width, operand_shape, out_layout,
                 combine="sum", neuron=None, zmax=None, narrow=False, early_exit=False,
                 lanes=1, fire=None):
        self._n = check_int("n", n, minimum=1)
        L = self._L = check_int("lanes", lanes, minimum=1)
        self._F = L if fire is None else check_int("fire", fire, minimum=1)
        if L & (L - 1) or n % L or L % self._F:
            raise ValueError(f"lanes ({L}) must be a power of two that divides n ({n}), and "
                             f"fire ({self._F}) must divide the lanes")
        if L > 1 and combine != "sum":
            raise ValueError(f"lanes ({L}) need combine 'sum'")
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
        self._early_exit = bool(early_exit)
        exit_members = ({"exit": In(1), "exiting": Out(1), "exit_end": Out(1)}
                        if self._early_exit else {})
        super().__init__({
            **exit_members,
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
            "p_rd_words": Out(COUNTER_WIDTH),
            "p_wr_words": Out(COUNTER_WIDTH),
            "saturations": Out(COUNTER_WIDTH),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        T, n, pw, L, F = self._T, self._n, self._pw, self._L, self._F
        n_w = n // L                # words of P
        lb = (L - 1).bit_length()   # j = word << lb | lane

        live = n_w == 1             # one word: a register the adders add to directly
        if L == 1:
            pmem = CountedMemory(shape=signed(pw), depth=n, init=[self._v0] * n, live=live)
        else:
            pmem = CountedMemory(shape=unsigned(L * pw), depth=n_w,
                                 init=pack_lanes([self._v0] * n, pw, L), live=live)
        m.submodules.pmem = pmem
        m.d.comb += pmem.clear.eq(self.clear)
        if self._combine == "sum":
            nr = self._neuron
            units = [FireUnit(
                levels=nr.levels, threshold=nr.threshold, potential_width=pw, bias_width=2,
                index_width=index_width(n) if L == 1 else sweep_index_width(n_w, L // F),
                v0=nr.v0,
                discharge=nr.discharge, saturate=self._narrow, pipelined=nr.pipelined,
                stalls=False) for _ in range(F)]
            for unit in units:
                m.d.comb += unit.clear.eq(self.clear)
        else:
            units = [MaxEmit(zmax=self._zmax, potential_width=pw, index_width=index_width(n))]

        integ = Signal(init=1)      # taking updates of this timestep (a register)
        draining = Signal()         # ``done`` was seen; the integrate stages drain
        m.d.comb += self.integrating.eq(integ)

        # -- N: the update registered; read P[j] -------------------------------------------
        op_shape = self.upd.payload.operand.shape()
        n_valid = Signal()
        n_j = Signal(range(n_w))
        ow = Shape.cast(op_shape).width
        n_op = Signal(op_shape if L == 1 else unsigned(L * ow))
        m.d.sync += n_valid.eq(self.upd.valid)
        upd_j, upd_op = self.upd.payload.j, self.upd.payload.operand
        with m.If(self.upd.valid):
            if L == 1:
                m.d.sync += [n_j.eq(upd_j), n_op.eq(upd_op)]
            else:                   # the word, the operand in its lane and 0 in the others
                m.d.sync += [n_j.eq(upd_j[lb:]),
                             n_op.eq(Cat(*(Mux(upd_j[:lb] == k, upd_op, 0)[:ow]
                                           for k in range(L))))]

        # -- X, A, W1: P ⊕ operand with forwarding -------------------------------------------
        m.submodules.acc = acc = Accumulate(n=n_w, potential_width=pw, operand_shape=op_shape,
                                            combine=self._combine, narrow=self._narrow,
                                            lanes=L, live=live)
        m.d.comb += [acc.valid.eq(n_valid), acc.j.eq(n_j), acc.operand.eq(n_op),
                     acc.p_data.eq(pmem.rd_data), acc.clear.eq(self.clear)]
        if live:
            m.d.comb += acc.p_live.eq(pmem.live)

        # -- sweep: read P[j] → W1 → unit → write back → Q, then EOT ----------------------------
        ee = self._early_exit
        m.submodules.sweep = sweep = Sweep(units=units, n=n_w, timesteps=T,
                                           out_layout=self.o.payload.shape(),
                                           pixels=n if L == 1 else 1, early_exit=ee,
                                           exit_sweep=self._combine == "sum", lanes=L,
                                           live=live)
        exit_now = self.exit if ee else Const(0, 1)
        if ee:
            m.d.comb += [sweep.exit.eq(self.exit), self.exiting.eq(sweep.exiting),
                         self.exit_end.eq(sweep.exit_end)]
        drain_done = Signal()
        m.d.comb += [
            drain_done.eq(draining & ~self.upd.valid & ~n_valid & ~acc.busy),
            sweep.start.eq(drain_done),
            sweep.p_data.eq(pmem.rd_data), sweep.b_data.eq(0),
            self.last_t.eq(sweep.last_t), self.out_last.eq(sweep.out_last),
        ]
        if live:
            m.d.comb += sweep.p_live.eq(pmem.live)
        wiring.connect(m, wiring.flipped(self.o), sweep.o)
        with m.If(integ & self.done):
            m.d.sync += [integ.eq(0), draining.eq(1)]
        with m.If(drain_done):
            m.d.sync += draining.eq(0)
        with m.If(sweep.done):
            m.d.sync += integ.eq(1)
        if ee and self._combine == "sum":
            with m.If(sweep.exit_end):
                m.d.sync += integ.eq(1)
            with m.If(self.exit):           # the exit sweep: no update until it has finished
                m.d.sync += integ.eq(0)

        # P's ports, as in the layer core: the read address a register written one cycle ahead.
        p_raddr = Signal(range(n_w))
        with m.If(self.upd.valid):
            m.d.sync += p_raddr.eq(upd_j[lb:] if L > 1 else upd_j)
        with m.Elif(sweep.issue):
            m.d.sync += p_raddr.eq(sweep.j + 1)
        with m.Elif(drain_done | exit_now):
            m.d.sync += p_raddr.eq(0)
        m.d.comb += [pmem.rd_addr.eq(p_raddr), pmem.rd_en.eq(n_valid | sweep.issue)]
        with m.If(sweep.wb):
            m.d.comb += [pmem.wr_addr.eq(sweep.wb_j), pmem.wr_data.eq(sweep.wb_p),
                         pmem.wr_en.eq(1)]
        with m.Else():
            m.d.comb += [pmem.wr_addr.eq(acc.wr_j), pmem.wr_data.eq(acc.wr_data),
                         pmem.wr_en.eq(acc.wr_en)]

        # -- counters and flag ----------------------------------------------------------------
        if self._combine == "sum":
            unit_sat = sum((u.saturations for u in units[1:]), units[0].saturations)
            m.d.comb += [self.overflow.eq(acc.overflow | Cat(*(u.overflow for u in units)).any()),
                         self.saturations.eq(acc.saturations + unit_sat)]
        else:
            m.d.comb += [self.overflow.eq(acc.overflow), self.saturations.eq(acc.saturations)]
        m.d.comb += [self.p_rd_words.eq(pmem.reads), self.p_wr_words.eq(pmem.writes)]
        if L == 1:
            m.d.comb += [self.p_rd.eq(pmem.reads), self.p_wr.eq(pmem.writes)]
        else:
            # Per neuron (SPEC §5): an update one access, a swept word L. The sweep's word
            # accesses are counted here, the updates' are the rest.
            ctr = Counters(m, self.clear, ("sweep_rd", "sweep_wr"))
            ctr.count("sweep_rd", sweep.issue)
            ctr.count("sweep_wr", sweep.wb)
            m.d.comb += [
                self.p_rd.eq(pmem.reads + (ctr.sig["sweep_rd"] << lb) - ctr.sig["sweep_rd"]),
                self.p_wr.eq(pmem.writes + (ctr.sig["sweep_wr"] << lb) - ctr.sig["sweep_wr"]),
            ]
        return m
