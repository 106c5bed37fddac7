"""Stages shared by the cores: the skid buffer, the accumulate stages with read-after-write
forwarding, the credit-counted fire sweep, and the counters.

Design note
===========

Every core that keeps potentials (:class:`hw.layer.LayerCore`, and through
:class:`hw.point.PointEngine` the barrier and pooling cores) ends the same way::

    (j, operand) ──► N: read P[j] ──► X: P[j] arrives ──► A: P[j] ⊕ operand → write P[j]
                                                           └► W1: the last write
    start ──► sweep j ascending: read P[j], B[co(j)] ──► W1 ──► unit ──► WB: write P'[j];
                                                                    emit (j, z) ──► Q ──► o
                                                          then EOT ──► Q ──► o

:class:`Accumulate` is X, A and W1 (the caller registers the update in N and issues the read of
P there); :class:`Sweep` is everything after ``start``. The caller owns the memory ``P`` (one
read port, one write port, read not transparent) and its read address register, because the
integrate stages and the sweep share both ports: the sweep writes back through
:attr:`Sweep.wb`, the accumulator through :attr:`Accumulate.wr_en`, never in the same cycle
(the sweep starts after the integrate stages have drained).

Read-after-write on P (:class:`Accumulate`)
    An update reads P[j] in N. Two earlier updates may still be in flight then: one in A,
    which writes P in that very cycle (the read does not see it), and one in X, which writes
    one cycle later. When the update reaches X, the first has moved to W1 (a register of the
    last write) and the second is in A; X takes A's sum when A targets the same neuron, else
    W1's when W1 does, else the memory's data. X and A never stall, so these are the only two;
    older writes are in the memory. The older choice (W1 or memory) is made from registers
    while A adds, so a single 2:1 multiplexer follows A's adder.

Credit flow (:class:`Sweep`)
    The sweep issues a neuron only when the output queue Q (:class:`hw.credit.CreditQueue`)
    has a credit, so every token that may come out of the unit has a place in Q: W1, the unit
    and the write-back never stall, and no ready travels back through them (the unit's
    ``o.ready`` is a constant). A stalled consumer holds the sweep counter; no access is
    repeated, so the memory counters stay exact under backpressure. Eight credits keep one
    neuron per cycle through the pipelined fire unit.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH

from .credit import CreditQueue
from .layout import EventKind
from .neuron import check_choice, check_int, saturate

__all__ = ["Counters", "SkidBuffer", "Accumulate", "Sweep", "inference_bracket",
           "cycle_condition"]


class Counters:
    """32-bit counters cleared by ``clear``.

    ``registered=True``: an increment is registered first and added one cycle later, so that
    handshake logic late in the cycle does not also drive a 32-bit adder (the counters are
    exact one cycle after the last event, like the memories'). ``registered=False``: added in
    the cycle after the condition, as a memory's access counter is."""

    def __init__(self, m, clear, names, *, registered=True):
        self.m, self.clear, self.registered = m, clear, registered
        self.sig = {n: Signal(COUNTER_WIDTH, name=f"ctr_{n}") for n in names}
        for s in self.sig.values():
            with m.If(clear):
                m.d.sync += s.eq(0)

    def count(self, name, cond, inc=1):
        """Add ``inc`` to counter ``name`` when ``cond``."""
        s = self.sig[name]
        inc = Value.cast(inc)
        if not self.registered:
            with self.m.If(~self.clear & cond):
                self.m.d.sync += s.eq(s + inc)
            return
        pending = Signal(len(inc), name=f"pend_{name}")
        self.m.d.sync += pending.eq(Mux(~self.clear & cond, inc, 0))
        with self.m.If(~self.clear):
            self.m.d.sync += s.eq(s + pending)


def inference_bracket(m, first_cand, input_done, out_last):
    """The ``cycles`` bracket of ``docs/hw-interfaces.md``: from the first input token of an
    inference (``first_cand``: any input handshake) to its T-th output EOT (``out_last``).
    ``input_done`` pulses when the core takes the inputs' last EOTs of timestep T.

    Returns ``(busy, flight, first)``: the counting condition, the inferences in the core
    (a register, 0..2) and the cycle an inference's first token is taken."""
    started = Signal()
    first = Signal()
    flight = Signal(range(3))
    m.d.comb += first.eq(first_cand & ~started)
    with m.If(input_done):
        m.d.sync += started.eq(0)
    with m.Elif(first_cand):
        m.d.sync += started.eq(1)
    m.d.sync += flight.eq(flight + first - out_last)
    return (flight != 0) | first, flight, first


def cycle_condition(m, T, first_cand, input_done, out_last):
    """The counting condition of :func:`inference_bracket` (``T`` is kept for callers that
    state it; the bracket only needs ``input_done``)."""
    return inference_bracket(m, first_cand, input_done, out_last)[0]


class SkidBuffer(wiring.Component):
    """A token register D behind a one-token skid buffer S: ``i.ready`` is a register (S
    empty), and back-to-back tokens cost no bubble.

    D loads a token when it is empty or hands its token over (``take``) in the same cycle; a
    token accepted while D is held waits in S, and D loads S's token before the input's.
    :attr:`load` and :attr:`next` tell which token D loads this cycle, so that a synchronous
    lookup on it (a fan-out table) is ready when D holds it.

    Parameters
    ----------
    layout : data.Layout

    Members
    -------
    i : In(stream.Signature(layout))
    valid : Out(1)
        D holds a token (a register).
    payload : Out(layout)
        D's token (a register).
    take : In(1)
        D's token is taken this cycle.
    load : Out(1)
        D loads :attr:`next` this cycle.
    next : Out(layout)
        S's token when S holds one, else the input's.
    accepted : Out(1)
        A token is accepted on ``i`` this cycle.
    """

    def __init__(self, layout):
        self._layout = layout
        super().__init__({
            "i": In(stream.Signature(layout)),
            "valid": Out(1),
            "payload": Out(layout),
            "take": In(1),
            "load": Out(1),
            "next": Out(layout),
            "accepted": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s_valid = Signal()
        s_tok = Signal(self._layout)
        m.d.comb += [
            self.i.ready.eq(~s_valid),
            self.accepted.eq(self.i.valid & ~s_valid),
            self.next.eq(Mux(s_valid, s_tok.as_value(), self.i.payload.as_value())),
            self.load.eq((s_valid | self.i.valid) & (~self.valid | self.take)),
        ]
        # The valid flags as plain logic of registers and ``take`` (no enables): D is full next
        # cycle when it keeps its token or when a token is offered (S's or the input's); S
        # keeps or takes a token that D does not load.
        m.d.sync += [
            self.valid.eq(s_valid | self.i.valid | (self.valid & ~self.take)),
            s_valid.eq((s_valid | self.i.valid) & ~self.load),
        ]
        with m.If(self.load):
            m.d.sync += self.payload.eq(self.next)
        with m.If(self.accepted & ~self.load):
            m.d.sync += s_tok.eq(self.i.payload)
        return m


class Accumulate(wiring.Component):
    """X, A and W1 of the module's design note: ``P[j] ⊕ operand`` with read-after-write
    forwarding, the sticky overflow flag and the ``saturations`` counter.

    Timing: the update in N (:attr:`valid`, :attr:`j`, :attr:`operand`, with the read of P[j]
    issued in that cycle) is written 2 cycles later (:attr:`wr_en`); one update per cycle, never
    stalled.

    Parameters
    ----------
    n : int
        Words of P.
    potential_width : int
    operand_shape : shape-like
    combine : {"sum", "max"}
        ``P + operand`` (saturated when ``narrow``) or ``max(P, operand)``.
    narrow : bool
    registered : bool
        :class:`Counters` option of the ``saturations`` counter.

    Members
    -------
    valid, j, operand : In
        The update in N.
    p_data : In(signed(potential_width))
        P's read data (of the read issued in N, one cycle later).
    busy : Out(1)
        An update is in X or A.
    wr_en, wr_j, wr_data : Out
        The write of A.
    clear : In(1)
    overflow : Out(1)
        Sticky: a sum saturated since ``clear``.
    saturations : Out(32)
    """

    def __init__(self, *, n, potential_width, operand_shape, combine="sum", narrow=False,
                 registered=True):
        check_int("n", n, minimum=1)
        self._pw = check_int("potential_width", potential_width, minimum=2)
        self._combine = check_choice("combine", combine, ("sum", "max"))
        self._narrow = bool(narrow) and combine == "sum"
        self._registered = registered
        super().__init__({
            "valid": In(1),
            "j": In(range(n)),
            "operand": In(operand_shape),
            "p_data": In(signed(potential_width)),
            "busy": Out(1),
            "wr_en": Out(1),
            "wr_j": Out(range(n)),
            "wr_data": Out(signed(potential_width)),
            "clear": In(1),
            "overflow": Out(1),
            "saturations": Out(COUNTER_WIDTH),
        })

    def elaborate(self, platform):
        m = Module()
        pw = self._pw
        jw = self.j.shape()
        op = self.operand.shape()

        x_valid = Signal()
        x_j = Signal(jw)
        x_op = Signal(op)
        m.d.sync += x_valid.eq(self.valid)
        with m.If(self.valid):
            m.d.sync += [x_j.eq(self.j), x_op.eq(self.operand)]

        a_valid = Signal()
        a_j = Signal(jw)
        a_op = Signal(op)
        a_p = Signal(signed(pw))
        a_sum = Signal(signed(pw))
        w1_valid = Signal()
        w1_j = Signal(jw)
        w1_sum = Signal(signed(pw))
        m.d.sync += [a_valid.eq(x_valid), w1_valid.eq(a_valid)]
        with m.If(a_valid):
            m.d.sync += [w1_j.eq(a_j), w1_sum.eq(a_sum)]
        x_older = Mux(w1_valid & (w1_j == x_j), w1_sum, self.p_data)
        with m.If(x_valid):
            m.d.sync += [a_j.eq(x_j), a_op.eq(x_op),
                         a_p.eq(Mux(a_valid & (a_j == x_j), a_sum, x_older))]
        a_sat = Signal()
        if self._combine == "sum":
            saturate(m, a_p + a_op, a_sum, a_sat, enabled=self._narrow)
        else:
            m.d.comb += a_sum.eq(Mux(a_p > a_op, a_p, a_op))

        m.d.comb += [self.busy.eq(x_valid | a_valid), self.wr_en.eq(a_valid),
                     self.wr_j.eq(a_j), self.wr_data.eq(a_sum)]

        ctr = Counters(m, self.clear, ("saturations",), registered=self._registered)
        ctr.count("saturations", a_valid & a_sat)
        ovf = Signal()
        with m.If(self.clear):
            m.d.sync += ovf.eq(0)
        with m.Elif(a_valid & a_sat):
            m.d.sync += ovf.eq(1)
        m.d.comb += [self.overflow.eq(ovf), self.saturations.eq(ctr.sig["saturations"])]
        return m


class Sweep(wiring.Component):
    """The end of a timestep: the credit-counted sweep of the module's design note, the
    write-back, the output queue and the EOT token, and the timestep counter.

    Timing: after :attr:`start`, one neuron issued per cycle (parallel or max unit; the serial
    fire unit one every N + 2) while Q has credits; the EOT enters Q after the last write-back
    and leaves through Q's output register (``o.valid``/``o.payload`` are registers; ``o.ready``
    only pops it). :attr:`done` pulses when the EOT enters Q: the caller integrates again from
    the next cycle.

    Parameters
    ----------
    unit : hw.neuron.FireUnit or hw.point.MaxEmit
        The neuron stage (added as the submodule ``unit``); its ``o`` is never stalled.
    n : int
        Neurons (words of P), swept 0..n−1.
    timesteps : int
    out_layout : hw.layout.EventLayout
    readout : bool
        Emit ``(j, H)`` READOUT tokens at the last timestep (and nothing before it) instead of
        ``(j, z)`` events for z > 0.
    pixels : int
        Neurons per bias row (conv: H_out·W_out; dense: 1): ``b_addr`` is ``j // pixels``.
    depth, credits : int
        Q's store and credits (8 and 8: one neuron per cycle through the pipelined unit).

    Members
    -------
    start : In(1)
        Begin the sweep (the integrate stages have drained).
    sweeping : Out(1)
        A register: between :attr:`start` and the last write-back.
    issue : Out(1)
        Neuron :attr:`j` is issued: P[j] and B[:attr:`b_addr`] must be read in this cycle.
    j : Out(range(n + 1))
        The neuron to issue (a register; the caller's read address register loads
        ``j + 1`` on :attr:`issue` and 0 on :attr:`start`).
    b_addr : Out(range(n // pixels))
    p_data, b_data : In
        The read data, one cycle after :attr:`issue`.
    wb, wb_j, wb_p : Out
        Write ``P'[wb_j] = wb_p`` this cycle.
    done : Out(1)
        The EOT enters Q this cycle.
    last_t : Out(1)
        The current timestep is the inference's last.
    o : Out(stream.Signature(out_layout))
    out_last : Out(1)
        The EOT of the inference's last timestep is taken on ``o`` in this cycle.
    """

    def __init__(self, *, unit, n, timesteps, out_layout, readout=False, pixels=1, depth=8,
                 credits=8):
        self._unit = unit
        self._n = check_int("n", n, minimum=1)
        self._T = check_int("timesteps", timesteps, minimum=1)
        self._pixels = check_int("pixels", pixels, minimum=1)
        if n % pixels:
            raise ValueError(f"pixels ({pixels}) must divide n ({n})")
        self._readout = bool(readout)
        self._out_layout = out_layout
        self._depth, self._credits = depth, credits
        fin = unit.i.payload
        super().__init__({
            "start": In(1),
            "sweeping": Out(1),
            "issue": Out(1),
            "j": Out(range(n + 1)),
            "b_addr": Out(range(n // pixels)),
            "p_data": In(fin.p.shape()),
            "b_data": In(fin.b.shape()),
            "wb": Out(1),
            "wb_j": Out(range(n)),
            "wb_p": Out(fin.p.shape()),
            "done": Out(1),
            "last_t": Out(1),
            "o": Out(stream.Signature(out_layout)),
            "out_last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, T, pixels = self._n, self._T, self._pixels
        m.submodules.unit = unit = self._unit

        t_cur = Signal(range(T))
        last_t = Signal()
        eot_out = Signal()              # the EOT is due (a register)
        m.d.comb += [last_t.eq(t_cur == T - 1), self.last_t.eq(last_t)]

        # -- issue: one neuron while Q has a credit ------------------------------------------
        q_room = Signal()
        s_more = Signal(init=1)         # j != n, registered
        s_co = Signal(self.b_addr.shape())
        s_pix = Signal(range(pixels))
        w1_valid = Signal()
        w1_j = Signal(range(n))
        # unit.i.ready is a register, and always high for the parallel and readout units and
        # MaxEmit (their output is never stalled); the serial unit takes a neuron every N + 2
        # cycles.
        m.d.comb += self.issue.eq(self.sweeping & s_more & q_room
                                  & (~w1_valid | unit.i.ready))
        with m.If(self.issue):
            m.d.sync += [w1_valid.eq(1), w1_j.eq(self.j), self.j.eq(self.j + 1),
                         s_more.eq(self.j + 1 != n)]
            if pixels > 1:
                with m.If(s_pix == pixels - 1):
                    m.d.sync += [s_pix.eq(0), s_co.eq(s_co + 1)]
                with m.Else():
                    m.d.sync += s_pix.eq(s_pix + 1)
            elif n > 1:
                m.d.sync += s_co.eq(s_co + 1)
        with m.Elif(unit.i.ready):
            m.d.sync += w1_valid.eq(0)
        m.d.comb += [
            self.b_addr.eq(s_co),
            unit.i.valid.eq(w1_valid),
            unit.i.payload.index.eq(w1_j),
            unit.i.payload.p.eq(self.p_data),
            unit.i.payload.b.eq(self.b_data),
            unit.i.payload.last.eq(last_t),
        ]

        # -- write-back and emission ---------------------------------------------------------
        if self._readout:
            emit = Signal()
            m.d.comb += emit.eq(last_t)
            ev_kind, ev_value = EventKind.READOUT, unit.o.payload.h
        else:
            emit = unit.o.payload.z != 0
            ev_kind, ev_value = EventKind.EVENT, unit.o.payload.z
        m.d.comb += [unit.o.ready.eq(1), self.wb.eq(unit.o.valid),
                     self.wb_j.eq(unit.o.payload.index), self.wb_p.eq(unit.o.payload.p)]

        # -- the queue Q -----------------------------------------------------------------------
        # A store of ``depth`` registers (never full thanks to the credits) and the output
        # register O (registers rather than lib.fifo: yosys would put so small a FIFO into a
        # block RAM, whose clock-to-out would then start the network's next path). ``last``
        # marks the EOT of the inference's last timestep.
        tok_layout = data.StructLayout({"tok": self._out_layout, "last": 1})
        t_tok = Signal(tok_layout)
        t_push = Signal()
        m.d.comb += self.done.eq(eot_out & q_room)
        with m.If(eot_out):
            m.d.comb += [t_push.eq(q_room), t_tok.tok.kind.eq(EventKind.EOT),
                         t_tok.last.eq(last_t)]
        with m.Else():
            m.d.comb += [
                t_push.eq(self.wb & emit),
                t_tok.tok.kind.eq(ev_kind),
                t_tok.tok.index.eq(unit.o.payload.index),
                t_tok.tok.value.eq(ev_value),
            ]
        m.submodules.q = q = CreditQueue(shape=tok_layout, depth=self._depth,
                                         credits=self._credits)
        m.d.comb += [
            q.take.eq(self.issue | self.done),     # never both: the EOT follows the sweep
            q.drop.eq(self.wb & ~emit),
            q.w_en.eq(t_push),
            q.w_data.eq(t_tok),
            q_room.eq(q.room),
            self.o.valid.eq(q.o.valid),
            self.o.payload.eq(q.o.payload.tok),
            q.o.ready.eq(self.o.ready),
            self.out_last.eq(self.o.valid & self.o.ready
                             & (q.o.payload.tok.kind == EventKind.EOT) & q.o.payload.last),
        ]

        # -- phases ------------------------------------------------------------------------------
        wb_count = Signal(range(n))
        with m.If(self.start):
            m.d.sync += self.sweeping.eq(1)
        with m.If(self.sweeping & self.wb):
            m.d.sync += wb_count.eq(wb_count + 1)
            with m.If(wb_count == n - 1):
                m.d.sync += [self.sweeping.eq(0), eot_out.eq(1), wb_count.eq(0)]
        with m.If(self.done):
            m.d.sync += [eot_out.eq(0), self.j.eq(0), s_more.eq(1), s_co.eq(0), s_pix.eq(0),
                         t_cur.eq(Mux(last_t, 0, t_cur + 1))]
        return m
