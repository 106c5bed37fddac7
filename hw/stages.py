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

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH

from .credit import CreditQueue, lutram_platform
from .layout import EventKind
from .neuron import check_choice, check_int, saturate

__all__ = ["Counters", "SkidBuffer", "Accumulate", "Sweep", "sweep_index_width",
           "inference_bracket",
           "cycle_condition", "lane", "popcount"]


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


def times_const(value, k):
    """``value · k`` for a constant ``k`` >= 1 as a sum of shifted copies of ``value`` (one per
    set bit of k): yosys maps a multiplication by a constant to a DSP multiplier on ECP5, whose
    3.9 ns sat in the counter read path of a core with L = 5 or 10 lanes."""
    shifts = [b for b in range(int(k).bit_length()) if k >> b & 1]
    terms = [value << b if b else value for b in shifts]
    return sum(terms[1:], terms[0])


def lane(value, k, shape):
    """Element ``k`` of a flat word of elements of ``shape`` (lane 0 in the low bits)."""
    shape = Shape.cast(shape)
    v = value[k * shape.width:(k + 1) * shape.width]
    return v.as_signed() if shape.signed else v


def mux_tree(values, sel):
    """``values[sel]`` as a balanced tree of 2:1 multiplexers, the low bit of ``sel`` first
    (``Array(values)[sel]`` gives yosys a one-hot ``$pmux`` with a comparator per value, about
    twice the LUTs of the tree on ECP5 at 16 values); ``sel`` beyond the values picks the last
    one."""
    level = list(values)
    b = 0
    while len(level) > 1:
        level = [Mux(sel[b], level[i + 1], level[i]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
        b += 1
    return level[0]


def _check_live(live, n):
    """``live`` (P one word in a register) is for ``n = 1`` word only."""
    if live and n != 1:
        raise ValueError(f"live needs one word of P (n = 1), not {n}")
    return bool(live)


def _any(values):
    """The OR of ``values`` (of which at most one is nonzero: a one-hot selection)."""
    return functools.reduce(operator.or_, values)


def _at_most(bits, k):
    """At most ``k`` bits of ``bits`` are set: a balanced tree of counts that saturate at
    ``k + 1`` (one small LUT per level, no carry chain)."""
    cap = k + 1
    width = cap.bit_length()
    counts = [bits[i] for i in range(len(bits))]
    while len(counts) > 1:
        nxt = []
        for i in range(0, len(counts) - 1, 2):
            total = counts[i] + counts[i + 1]
            nxt.append(Mux(total > cap, cap, total)[:width])
        if len(counts) % 2:
            nxt.append(counts[-1])
        counts = nxt
    return counts[0] <= k


def popcount(bits):
    """The number of ones in ``bits`` (a Value)."""
    return sum((bits[k] for k in range(1, len(bits))), bits[0]) if len(bits) else Const(0, 1)


class Accumulate(wiring.Component):
    """X, A and W1 of the module's design note: ``P[j] ⊕ operand`` with read-after-write
    forwarding, the sticky overflow flag and the ``saturations`` counter, on words of
    ``lanes`` potentials (one target word, ``lanes`` operands, combined lane by lane).

    Timing: the update in N (:attr:`valid`, :attr:`j`, :attr:`operand`, with the read of P[j]
    issued in that cycle) is written 2 cycles later (:attr:`wr_en`); one update per cycle, never
    stalled.

    Parameters
    ----------
    n : int
        Words of P.
    potential_width : int
    operand_shape : shape-like
        Shape of one lane's operand.
    combine : {"sum", "max"}
        ``P + operand`` (saturated when ``narrow``) or ``max(P, operand)``.
    narrow : bool
    registered : bool
        :class:`Counters` option of the ``saturations`` counter.
    lanes : int
        Potentials per word (lane 0 in the low bits of :attr:`operand`, :attr:`p_data`,
        :attr:`wr_data`).
    live : bool
        P is one word (``n = 1``) held in a register (``CountedMemory(live=True)``): A adds
        the operand to that register (:attr:`p_live`) as it stands, which already holds every
        earlier write, so there is no forwarding and :attr:`p_data` is not used; the same
        timing and results.

    Members
    -------
    valid, j : In
        The update in N: its target word.
    operand : In(lanes × operand_shape)
    p_data : In(lanes × potential_width)
        P's read data (of the read issued in N, one cycle later).
    p_live : In(lanes × potential_width)
        Only with ``live``: P's one word.
    busy : Out(1)
        An update is in X or A.
    wr_en, wr_j, wr_data : Out
        The write of A.
    clear : In(1)
    overflow : Out(1)
        Sticky: a sum saturated since ``clear``.
    saturations : Out(32)
        Saturated lane additions.
    """

    def __init__(self, *, n, potential_width, operand_shape, combine="sum", narrow=False,
                 registered=True, lanes=1, live=False):
        check_int("n", n, minimum=1)
        self._live = _check_live(live, n)
        self._pw = check_int("potential_width", potential_width, minimum=2)
        self._combine = check_choice("combine", combine, ("sum", "max"))
        self._narrow = bool(narrow) and combine == "sum"
        self._registered = registered
        self._L = check_int("lanes", lanes, minimum=1)
        self._op = Shape.cast(operand_shape)
        super().__init__({
            "valid": In(1),
            "j": In(range(n)),
            "operand": In(unsigned(self._L * self._op.width)),
            "p_data": In(unsigned(self._L * potential_width)),
            "busy": Out(1),
            "wr_en": Out(1),
            "wr_j": Out(range(n)),
            "wr_data": Out(unsigned(self._L * potential_width)),
            "clear": In(1),
            "overflow": Out(1),
            "saturations": Out(COUNTER_WIDTH),
            **({"p_live": In(unsigned(self._L * potential_width))} if self._live else {}),
        })

    def elaborate(self, platform):
        m = Module()
        pw, L, op = self._pw, self._L, self._op
        jw = self.j.shape()

        x_valid = Signal()
        x_j = Signal(jw)
        x_op = Signal(self.operand.shape())
        m.d.sync += x_valid.eq(self.valid)
        with m.If(self.valid):
            m.d.sync += [x_j.eq(self.j), x_op.eq(self.operand)]

        a_valid = Signal()
        a_j = Signal(jw)
        a_op = Signal(self.operand.shape())
        w1_valid = Signal()
        w1_j = Signal(jw)
        m.d.sync += [a_valid.eq(x_valid), w1_valid.eq(a_valid)]
        with m.If(x_valid):
            m.d.sync += [a_j.eq(x_j), a_op.eq(x_op)]
        with m.If(a_valid):
            m.d.sync += w1_j.eq(a_j)
        # The forwarding hits of the update in X, registered: compared one cycle early with the
        # update entering X (``j``), so that no comparator sits before A's adder.
        a_hit, w1_hit = Signal(), Signal()
        m.d.sync += [a_hit.eq(x_valid & (x_j == self.j)), w1_hit.eq(a_valid & (a_j == self.j))]
        sums, sats = [], []
        for k in range(L):
            a_p = Signal(signed(pw), name=f"a_p{k}" if L > 1 else "a_p")
            a_sum = Signal(signed(pw), name=f"a_sum{k}" if L > 1 else "a_sum")
            if self._live:              # the word as written so far: no forwarding
                m.d.comb += a_p.eq(lane(self.p_live, k, signed(pw)))
            else:
                w1_sum = Signal(signed(pw), name=f"w1_sum{k}" if L > 1 else "w1_sum")
                with m.If(a_valid):
                    m.d.sync += w1_sum.eq(a_sum)
                x_older = Mux(w1_hit, w1_sum, lane(self.p_data, k, signed(pw)))
                with m.If(x_valid):
                    m.d.sync += a_p.eq(Mux(a_hit, a_sum, x_older))
            a_sat = Signal(name=f"a_sat{k}" if L > 1 else "a_sat")
            opk = lane(a_op, k, op)
            if self._combine == "sum":
                saturate(m, a_p + opk, a_sum, a_sat, enabled=self._narrow)
            else:
                m.d.comb += a_sum.eq(Mux(a_p > opk, a_p, opk))
            sums.append(a_sum)
            sats.append(a_sat)

        m.d.comb += [self.busy.eq(x_valid | a_valid), self.wr_en.eq(a_valid),
                     self.wr_j.eq(a_j), self.wr_data.eq(Cat(*sums))]

        ctr = Counters(m, self.clear, ("saturations",), registered=self._registered)
        ovf = Signal()
        if self._narrow:
            sat = Cat(*sats)
            ctr.count("saturations", a_valid & (sat != 0), popcount(sat))
            with m.If(self.clear):
                m.d.sync += ovf.eq(0)
            with m.Elif(a_valid & (sat != 0)):
                m.d.sync += ovf.eq(1)
        m.d.comb += [self.overflow.eq(ovf), self.saturations.eq(ctr.sig["saturations"])]
        return m


def sweep_index_width(n, groups=1):
    """Bits of the ``index`` a :class:`Sweep` passes through its units: the group of the word
    (``groups`` = L / F per word) in the low bits, the word (``n`` of them) above."""
    return (groups - 1).bit_length() + max(1, (int(n) - 1).bit_length())


class Sweep(wiring.Component):
    """The end of a timestep: the credit-counted sweep of the module's design note, the
    write-back, the output queue and the EOT token, and the timestep counter; with ``lanes``
    L > 1, one word of L neurons per cycle, or with F < L fire units (``units``) one group of F
    lanes of a word per cycle (docs/lanes.md, fire lanes).

    Timing: after :attr:`start`, one word issued per cycle (parallel or max units; the serial
    fire unit one every N + 2) while Q has credits; the EOT enters Q after the last write-back
    and leaves through Q's output register (``o.valid``/``o.payload`` are registers; ``o.ready``
    only pops it). :attr:`done` pulses when the EOT enters Q: the caller integrates again from
    the next cycle. With L > 1, Q holds words (the lanes that emit, as a mask) and a serializer
    register after it sends their tokens one per cycle, lane 0 first (one cycle more to ``o``).
    With F fire units and L = G·F lanes the sweep issues the G groups of each word in order, one
    per cycle, as if they were words of F lanes: the word is read at its first group (the
    read data hold while the read enable is low), the units' results of groups 0 … G − 2 wait
    in a register, and the word is written back once, with its last group; Q holds groups.

    Parameters
    ----------
    units : list of hw.neuron.FireUnit or hw.point.MaxEmit
        F neuron stages (submodules ``unit``, or ``unit0``.. with several), identical, so they
        run in lockstep; their ``index`` is the group address (:func:`sweep_index_width`
        bits: the group in the low bits, the word above), their ``o`` never stalled.
    n : int
        Words of P, swept 0..n−1; neuron ``j = word·L + lane``.
    lanes : int or None
        L, the lanes of a P word (a multiple of F); ``None``: F.
    timesteps : int
    out_layout : hw.layout.EventLayout
    readout : bool
        Emit ``(j, H)`` READOUT tokens at the last timestep (and nothing before it) instead of
        ``(j, z)`` events for z > 0.
    pixels : int
        Words per bias row (conv: H_out·W_out; dense: 1): ``b_addr`` is ``word // pixels``,
        and with L lanes lane l of word ``g·pixels + p`` is neuron ``(g·L + l)·pixels + p``
        (the emission order of docs/lanes.md).
    depth, credits : int
        Q's store and credits (8 and 8: one word per cycle through the pipelined unit).
    bitserial : bool
        The schedule of docs/bitserial.md §5 (one lane; the units are
        :class:`hw.neuron.BitSerialUnit`, which get the sweep number as ``step``): T − 1
        doubling sweeps that end without an EOT (:attr:`done` as the last write-back is
        counted), then T fire sweeps back to back (:attr:`restart` between them), each followed
        by its EOT; :attr:`done` after the last. A readout keeps T sweeps with their EOTs.
    early_exit : bool
        Input-aware early exit (docs/early-exit.md): a readout emits its READOUT tokens at
        every timestep, and :attr:`exit` starts an exit sweep.
    exit_sweep : bool
        With ``early_exit``: ``False`` for a core that keeps nothing in P across timesteps (a
        max kind, whose sweep writes 0): :attr:`exit` then only returns the timestep counter
        to 0, :attr:`exit_end` pulses with it and :attr:`exiting` stays low (no access).
    live : bool
        P is one word in a register (``n = 1``, ``CountedMemory(live=True)``), given as
        :attr:`p_live`: with F < L each group's potentials are selected from it as the group
        issues and registered, so no multiplexer sits before the units (same cycles; the
        word is written back after its last group has issued).

    Members
    -------
    start : In(1)
        Begin the sweep (the integrate stages have drained).
    sweeping : Out(1)
        A register: between :attr:`start` and the last write-back.
    issue : Out(1)
        Word :attr:`j` is issued: P[j] and B[:attr:`b_addr`] must be read in this cycle
        (with F < L: its first group is).
    j : Out(range(n + 1))
        The word to issue (a register; the caller's read address register loads
        ``j + 1`` on :attr:`issue` and 0 on :attr:`start`).
    b_addr : Out(range(n // pixels))
    p_data, b_data : In
        The read data (L lanes, lane 0 in the low bits), one cycle after :attr:`issue`.
    p_live : In(L × potential width)
        Only with ``live``: P's word as it stands.
    wb, wb_j, wb_p : Out
        Write ``P'[wb_j] = wb_p`` (L lanes) this cycle.
    done : Out(1)
        The EOT enters Q this cycle (bit-serial: a doubling sweep ended, or the last fire
        sweep's EOT entered Q); the caller integrates again from the next cycle.
    restart : Out(1)
        Bit-serial: a fire sweep's EOT entered Q and the next fire sweep starts (the caller's
        read address register loads 0); always 0 otherwise.
    b_en : Out(1)
        Read the bias memory this cycle: :attr:`issue` (bit-serial: in the first fire sweep
        only, once per neuron and inference).
    doubled : Out(1)
        Only with ``bitserial``: the write-back of this cycle ends a neuron's doubling
        (P' = 2P: sweeps 0 … T − 2, the readout's too), for the core's ``shifts`` counter.
    last_t : Out(1)
        The current timestep is the inference's last.
    o : Out(stream.Signature(out_layout))
    out_last : Out(1)
        The EOT of the inference's last timestep is taken on ``o`` in this cycle.
    exit : In(1)
        Only with ``early_exit``: pulse while idle (between timesteps) to run the exit sweep:
        every word is read and written back as at the last timestep (v0) with the bias input
        tied to 0 (the caller reads no bias); a readout emits ``(j, P[j])``, a spiking core
        nothing; no EOT. The timestep counter returns to 0.
    exit_end : Out(1)
        Only with ``early_exit``: the exit sweep's last write-back is in this cycle (without
        ``exit_sweep``: :attr:`exit` itself).
    exiting : Out(1)
        Only with ``early_exit``: a register, high during the exit sweep.
    """

    def __init__(self, *, units, n, timesteps, out_layout, readout=False, pixels=1, depth=8,
                 credits=8, bitserial=False, early_exit=False, exit_sweep=True, lanes=None,
                 live=False):
        self._units = list(units)
        self._live = _check_live(live, n)
        self._F = len(self._units)
        if not self._F:
            raise ValueError("units must hold at least one unit")
        self._L = self._F if lanes is None else check_int("lanes", lanes, minimum=1)
        if self._L % self._F:
            raise ValueError(f"the {self._F} fire units must divide the lanes ({self._L})")
        self._G = self._L // self._F        # groups per word
        self._gb = (self._G - 1).bit_length()
        self._n = check_int("n", n, minimum=1)
        self._T = check_int("timesteps", timesteps, minimum=1)
        self._pixels = check_int("pixels", pixels, minimum=1)
        if n % pixels:
            raise ValueError(f"pixels ({pixels}) must divide n ({n})")
        self._readout = bool(readout)
        self._bitserial = bool(bitserial)
        if self._bitserial and len(self._units) != 1:
            raise ValueError("a bit-serial sweep has one lane")
        self._out_layout = out_layout
        self._depth, self._credits = depth, credits
        self._early_exit = bool(early_exit)
        self._exit_sweep = bool(exit_sweep)
        fin = self._units[0].i.payload
        self._pshape, self._bshape = fin.p.shape(), fin.b.shape()
        L = self._L
        exit_members = {"exit": In(1), "exit_end": Out(1), "exiting": Out(1)} \
            if self._early_exit else {}
        bitserial_members = {"doubled": Out(1)} if self._bitserial else {}
        super().__init__({
            **exit_members,
            **bitserial_members,
            "start": In(1),
            "sweeping": Out(1),
            "issue": Out(1),
            "j": Out(range(n + 1)),
            "b_addr": Out(range(n // pixels)),
            "p_data": In(unsigned(L * self._pshape.width)),
            "b_data": In(unsigned(L * self._bshape.width)),
            "wb": Out(1),
            "wb_j": Out(range(n)),
            "wb_p": Out(unsigned(L * self._pshape.width)),
            "done": Out(1),
            "last_t": Out(1),
            "o": Out(stream.Signature(out_layout)),
            "out_last": Out(1),
            "b_en": Out(1),
            "restart": Out(1),
            **({"p_live": In(unsigned(L * self._pshape.width))} if self._live else {}),
        })

    def elaborate(self, platform):
        m = Module()
        n, T, pixels, L = self._n, self._T, self._pixels, self._L
        F, G, gb = self._F, self._G, self._gb
        units = self._units
        if F == 1:
            m.submodules.unit = units[0]
        else:
            for k, u in enumerate(units):
                m.submodules[f"unit{k}"] = u
        u0 = units[0]

        # Sweeps per inference: T (rate); bit-serial (docs/bitserial.md §5) T − 1 doubling
        # sweeps, which emit nothing, not even an EOT, and return to integration, then T fire
        # sweeps back to back, each followed by its EOT (a readout: T sweeps, as rate).
        S = (2 * T - 1) if self._bitserial and not self._readout else T
        t_cur = Signal(range(S))
        last_t = Signal()
        eot_out = Signal()              # the EOT is due (a register)
        shift = Signal()                # a doubling sweep (no EOT)
        more = Signal()                 # a fire sweep follows this one at once
        eot_push = Signal()             # the EOT enters Q
        m.d.comb += [last_t.eq(t_cur == S - 1), self.last_t.eq(last_t)]
        if self._bitserial and not self._readout:
            m.d.comb += [shift.eq(t_cur < T - 1), more.eq((t_cur >= T - 1) & ~last_t)]
        ee = self._early_exit
        exiting = self.exiting if ee and self._exit_sweep else Const(0, 1)
        exit_end = self.exit_end if ee else Const(0, 1)
        # done, restart or exit_end: the sweep's state returns to word 0
        self._finish = Signal()
        m.d.comb += self._finish.eq(self.done | self.restart | exit_end)

        # -- issue: one word while Q has a credit --------------------------------------------
        q_room = Signal()
        s_more = Signal(init=1)         # j != n, registered
        s_co = Signal(self.b_addr.shape())
        s_pix = Signal(range(pixels))
        w1_valid = Signal()
        w1_j = Signal(range(n))
        # With G groups per word: the group to issue, and the group in W1.
        grp = Signal(range(G)) if G > 1 else Const(0, 1)
        w1_g = Signal(range(G)) if G > 1 else Const(0, 1)
        w1_first = Signal() if G > 1 else Const(1, 1)   # w1_g == 0, as a register
        # unit.i.ready is a register, and always high for the parallel and readout units and
        # MaxEmit (their output is never stalled); the serial unit takes a neuron every N + 2
        # cycles. The lanes' units are identical and fed together, so lane 0 speaks for all.
        g_issue = Signal()                  # a group (the word's first: a read) is issued
        self._g_issue = g_issue
        m.d.comb += [g_issue.eq(self.sweeping & s_more & q_room & (~w1_valid | u0.i.ready)),
                     self.issue.eq(g_issue & (grp == 0))]
        with m.If(g_issue):
            m.d.sync += [w1_valid.eq(1), w1_j.eq(self.j)]
            if G > 1:
                m.d.sync += [w1_g.eq(grp), w1_first.eq(grp == 0)]
            with m.If(grp == G - 1):
                m.d.sync += [self.j.eq(self.j + 1), s_more.eq(self.j + 1 != n)]
                if G > 1:
                    m.d.sync += grp.eq(0)
                if pixels > 1:
                    with m.If(s_pix == pixels - 1):
                        m.d.sync += [s_pix.eq(0), s_co.eq(s_co + 1)]
                    with m.Else():
                        m.d.sync += s_pix.eq(s_pix + 1)
                elif n > 1:
                    m.d.sync += s_co.eq(s_co + 1)
            if G > 1:
                with m.Else():
                    m.d.sync += grp.eq(grp + 1)
        with m.Elif(u0.i.ready):
            m.d.sync += w1_valid.eq(0)
        m.d.comb += self.b_addr.eq(s_co)
        m.d.comb += eot_push.eq(eot_out & q_room & ~shift)
        if G > 1:
            with m.If(self._finish):
                m.d.sync += grp.eq(0)
        if self._bitserial:
            # The bias is read once per inference: in the first fire sweep (readout: its last).
            m.d.comb += self.b_en.eq(self.issue & (t_cur == T - 1))
        else:
            m.d.comb += self.b_en.eq(self.issue)
        # With G > 1 the units take group 0 from the read data and group g > 0 from ``rest``,
        # the word's later lanes shifted down by F lanes per group (loaded as group 0 leaves
        # W1): a 2:1 multiplexer before the fire units' H = P + b adder, not a G:1 (on
        # iCE40 that multiplexer set the clock). On ECP5 (wide multiplexers in PFUMX/L6MUX
        # cells) the G:1 multiplexer tree is cheaper (the Spiker+ bench top at L = 32, F = 2:
        # 3098 LUT4 sites against 3285 with the shift register; L = 8 … 32, F = 2, 4 alike).
        # With one live word (P a register, n = 1) the group's potentials are selected from
        # it when the group issues and registered in W1 (the word does not change while its
        # groups issue: it is written back after the last), so no multiplexer sits before the
        # units' adder on either family.
        pre_p = self._live and G > 1
        shift_groups = G > 1 and not lutram_platform(platform)
        rests = {}
        if shift_groups:
            w1_take = Signal()              # the units take the group in W1
            m.d.comb += w1_take.eq(w1_valid & u0.i.ready)
            keys = ([] if pre_p else [("p", self.p_data, self._pshape)]) \
                + [("b", self.b_data, self._bshape)]
            for key, data, shape in keys:
                width = Shape.cast(shape).width
                rest = rests[key] = Signal((L - F) * width, name=f"rest_{key}")
                with m.If(w1_take):
                    with m.If(w1_first):
                        m.d.sync += rest.eq(data[F * width:])
                    with m.Else():
                        m.d.sync += rest.eq(rest[F * width:])

        if pre_p:
            w1_p = [Signal(self._pshape, name=f"w1_p{k}") for k in range(F)]
            with m.If(g_issue):
                m.d.sync += [w1_p[k].eq(mux_tree([lane(self.p_live, g * F + k, self._pshape)
                                                  for g in range(G)], grp))
                             for k in range(F)]

        def lane_of(key, data, k, shape):   # lane g·F + k of the word, g the group in W1
            if key == "p" and pre_p:
                return w1_p[k]
            if G == 1:
                return lane(data, k, shape)
            if shift_groups:
                return Mux(w1_first, lane(data, k, shape), lane(rests[key], k, shape))
            return mux_tree([lane(data, g * F + k, shape) for g in range(G)], w1_g)

        for k, u in enumerate(units):
            m.d.comb += [
                u.i.valid.eq(w1_valid),
                u.i.payload.index.eq(Cat(w1_g, w1_j) if G > 1 else w1_j),
                u.i.payload.p.eq(lane_of("p", self.p_data, k, self._pshape)),
                u.i.payload.b.eq(Mux(exiting, 0, lane_of("b", self.b_data, k, self._bshape))),
                u.i.payload.last.eq(last_t | exiting),
                u.o.ready.eq(1),
            ]
            if self._bitserial:
                m.d.comb += u.i.payload.step.eq(t_cur)

        # -- write-back and emission ---------------------------------------------------------
        if self._readout:
            # early exit: the potentials of every timestep go to the top's decision logic
            emits = [Const(1, 1) if ee else last_t] * L
            ev_kind = EventKind.READOUT
            values = [u.o.payload.h for u in units]
        else:
            emits = [(u.o.payload.z != 0) & ~exiting for u in units]
            ev_kind = EventKind.EVENT
            values = [u.o.payload.z for u in units]
        # gwb: a group leaves the units; the word is written back with its last group (the
        # groups before it wait in ``held``).
        gwb = u0.o.valid
        self._gwb = gwb
        wb_g = u0.o.payload.index[:gb] if G > 1 else Const(0, 1)
        fresh_p = Cat(*(u.o.payload.p for u in units))
        if G > 1:
            held = Signal((G - 1) * len(fresh_p))
            with m.If(gwb):
                for g in range(G - 1):
                    with m.If(wb_g == g):
                        m.d.sync += held.word_select(g, len(fresh_p)).eq(fresh_p)
            m.d.comb += [self.wb.eq(gwb & (wb_g == G - 1)), self.wb_p.eq(Cat(held, fresh_p)),
                         self.wb_j.eq(u0.o.payload.index[gb:])]
        else:
            m.d.comb += [self.wb.eq(gwb), self.wb_j.eq(u0.o.payload.index),
                         self.wb_p.eq(fresh_p)]
        if self._bitserial:
            # t_cur moves on only after the sweep's last write-back (``_finish``), so it still
            # names the sweep of every write-back; the unit doubles at steps 0 … T − 2.
            m.d.comb += self.doubled.eq(self.wb & (t_cur < T - 1))
        m.d.comb += [self.done.eq((eot_push & ~more) | (eot_out & shift)),
                     self.restart.eq(eot_push & more)]
        if L == 1:
            nidx = u0.o.payload.index
        else:
            nidx = self._neuron_base(m, gwb, wb_g)
        if F == 1:
            self._queue_one(m, q_room, eot_out, last_t, emits[0], ev_kind, values[0],
                            eot_push, gwb, nidx)
        else:
            self._queue_words(m, q_room, eot_out, last_t, emits, ev_kind, values, eot_push,
                              gwb, nidx)

        # -- phases ------------------------------------------------------------------------------
        wb_count = Signal(range(n))
        with m.If(self.start | self.restart):
            m.d.sync += self.sweeping.eq(1)
        if ee and self._exit_sweep:
            with m.If(self.exit):
                m.d.sync += [self.sweeping.eq(1), self.exiting.eq(1)]
            m.d.comb += exit_end.eq(self.sweeping & self.wb & (wb_count == n - 1) & exiting)
        elif ee:
            m.d.comb += [exit_end.eq(self.exit), self.exiting.eq(0)]
        with m.If(self.sweeping & self.wb):
            m.d.sync += wb_count.eq(wb_count + 1)
            with m.If(wb_count == n - 1):
                m.d.sync += [self.sweeping.eq(0), eot_out.eq(~exiting), wb_count.eq(0)]
        with m.If(self._finish):
            m.d.sync += [eot_out.eq(0), self.j.eq(0), s_more.eq(1), s_co.eq(0), s_pix.eq(0),
                         t_cur.eq(Mux(last_t | exiting, 0, t_cur + 1))]
        if ee and self._exit_sweep:
            with m.If(exit_end):
                m.d.sync += self.exiting.eq(0)
        elif ee:
            with m.If(self.exit):           # nothing to clear: the next inference at t = 0
                m.d.sync += t_cur.eq(0)
        return m

    def _neuron_base(self, m, gwb, wb_g):
        # The neuron of lane 0 of the group leaving the units: words are (channel word c,
        # pixel p) with pixels p fastest, groups of a word in order, neuron
        # j = (c·L + g·F + lane)·pixels + p (dense: pixels = 1, j = word·L + g·F + lane);
        # counted along the groups, which come in order.
        L, F, G, n, pixels = self._L, self._F, self._G, self._n, self._pixels
        base = Signal(range(n * L))
        pix = Signal(range(pixels))
        with m.If(gwb):
            with m.If(wb_g != G - 1):
                m.d.sync += base.eq(base + F * pixels)
            with m.Else():
                if pixels > 1:
                    with m.If(pix == pixels - 1):
                        m.d.sync += [pix.eq(0), base.eq(base + (F - 1) * pixels + 1)]
                    with m.Else():
                        m.d.sync += [pix.eq(pix + 1),
                                     base.eq(base - (G - 1) * F * pixels + 1)]
                else:
                    m.d.sync += base.eq(base + F)
        with m.If(self._finish):
            m.d.sync += [base.eq(0), pix.eq(0)]
        return base

    def _queue_one(self, m, q_room, eot_out, last_t, emit, ev_kind, value, eot_push, gwb,
                   nidx):
        # Q: a store of ``depth`` registers (never full thanks to the credits) and the output
        # register O (registers rather than lib.fifo: yosys would put so small a FIFO into a
        # block RAM, whose clock-to-out would then start the network's next path). ``last``
        # marks the EOT of the inference's last timestep.
        u0 = self._units[0]
        tok_layout = data.StructLayout({"tok": self._out_layout, "last": 1})
        t_tok = Signal(tok_layout)
        t_push = Signal()
        with m.If(eot_out):
            m.d.comb += [t_push.eq(eot_push), t_tok.tok.kind.eq(EventKind.EOT),
                         t_tok.last.eq(last_t)]
        with m.Else():
            m.d.comb += [
                t_push.eq(gwb & emit),
                t_tok.tok.kind.eq(ev_kind),
                t_tok.tok.index.eq(nidx),
                t_tok.tok.value.eq(value),
            ]
        m.submodules.q = q = CreditQueue(shape=tok_layout, depth=self._depth,
                                         credits=self._credits)
        m.d.comb += [
            q.take.eq(self._g_issue | eot_push),   # never both: the EOT follows the sweep
            q.drop.eq(gwb & ~emit),
            q.w_en.eq(t_push),
            q.w_data.eq(t_tok),
            q_room.eq(q.room),
            self.o.valid.eq(q.o.valid),
            self.o.payload.eq(q.o.payload.tok),
            q.o.ready.eq(self.o.ready),
            self.out_last.eq(self.o.valid & self.o.ready
                             & (q.o.payload.tok.kind == EventKind.EOT) & q.o.payload.last),
        ]

    def _queue_words(self, m, q_room, eot_out, last_t, emits, ev_kind, values, eot_push, gwb,
                     wb_base):
        # Q holds groups of F lanes (words when F = L): the lanes that emit (a mask), their
        # values, the neuron of lane 0 (``wb_base``); the EOT is a group of one lane. After Q's
        # output register, the serializer sends the lanes of the group at Q's head lowest
        # first, one per cycle, into the output register O, and pops the group with its last
        # lane. ``sent`` marks the lanes already sent.
        L, n, pixels = self._F, self._n, self._pixels
        vw = Shape.cast(self._out_layout["value"].shape).width
        n_neurons = n * self._L
        # ``single``: the mask has at most one lane (precomputed at the push, for the pop).
        # ``first``: the mask's lowest lane, one-hot (also precomputed at the push).
        ent = data.StructLayout({"kind": EventKind, "base": range(n_neurons), "mask": L,
                                 "first": L, "single": 1, "vals": L * vw, "last": 1})
        t_ent = Signal(ent)
        t_push = Signal()
        mask = Cat(*emits)
        with m.If(eot_out):
            m.d.comb += [t_push.eq(eot_push), t_ent.kind.eq(EventKind.EOT), t_ent.mask.eq(1),
                         t_ent.first.eq(1), t_ent.single.eq(1), t_ent.last.eq(last_t)]
        with m.Else():
            m.d.comb += [
                t_push.eq(gwb & (mask != 0)),
                t_ent.kind.eq(ev_kind),
                t_ent.base.eq(wb_base),
                t_ent.mask.eq(mask),
                t_ent.first.eq(mask & (~mask + 1)),
                t_ent.single.eq(_at_most(mask, 1)),
                t_ent.vals.eq(Cat(*(v[:vw] for v in values))),
            ]
        m.submodules.q = q = CreditQueue(shape=ent, depth=self._depth, credits=self._credits)
        head = q.o.payload
        sent = Signal(L)
        rem = Signal(L)
        onehot = Signal(L)
        offset = Signal(range((L - 1) * pixels + 1))     # lane · pixels
        m.d.comb += [
            q.take.eq(self._g_issue | eot_push),
            q.drop.eq(gwb & (mask == 0) & ~eot_out),
            q.w_en.eq(t_push),
            q.w_data.eq(t_ent),
            q_room.eq(q.room),
            rem.eq(head.mask & ~sent),
            offset.eq(_any(Mux(onehot[k], k * pixels, 0) for k in range(1, L))),
        ]
        # Whether the lowest lane left is the head's last, from registers through one LUT: for
        # a fresh head (nothing sent yet) its ``single`` bit, else ``few``, registered when
        # the previous lane left ("at most one lane after it"), so that no priority logic sits
        # before Q's pop.
        # The lowest lane still to send (``onehot``) likewise: the head's ``first`` for a fresh
        # head, else ``nxt``, the lowest lane after the previous one, registered when it left;
        # so the value and index multiplexers start from registers through one LUT.
        fresh = Signal(init=1)
        few = Signal()
        nxt = Signal(L)
        last_lane = Signal()
        after = Signal(L)
        m.d.comb += [
            last_lane.eq(Mux(fresh, head.single, few)),
            onehot.eq(Mux(fresh, head.first, nxt)),
            after.eq(rem & ~onehot),
        ]
        o_last = Signal()
        load = q.o.valid & (~self.o.valid | self.o.ready)
        m.d.comb += q.o.ready.eq(load & last_lane)
        with m.If(load):
            m.d.sync += [fresh.eq(last_lane), few.eq(_at_most(rem, 2)),
                         nxt.eq(after & (~after + 1))]
        value = Signal(vw)
        m.d.comb += value.eq(_any(Mux(onehot[k], head.vals[k * vw:(k + 1) * vw], 0)
                                  for k in range(L)))
        with m.If(load):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.kind.eq(head.kind),
                         self.o.payload.index.eq(head.base + offset),
                         self.o.payload.value.eq(value), o_last.eq(head.last)]
            with m.If(last_lane):
                m.d.sync += sent.eq(0)
            with m.Else():
                m.d.sync += sent.eq(sent | onehot)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.comb += self.out_last.eq(self.o.valid & self.o.ready
                                     & (self.o.payload.kind == EventKind.EOT) & o_last)
