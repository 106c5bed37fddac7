"""Residual-block components: :class:`Fork`, :class:`BarrierCore`, :class:`SewJoin` (SPEC §3–§5).

Design note
===========

A residual block (seed 000 §4.3–4.4, Fig. 3) splits one event stream into a direct path (two
convolutions) and a residual path (identity, or a 1×1 stride-2 convolution), and joins the two
again::

             ┌─► Queue ─► conv a ─► Queue ─► conv b ─► Queue ─┐
    S ─► Fork┤                                                 ├─► join (barrier | SEW) ─► …
             └─► Queue ─────────── (identity or short) ─► Queue┘

Fork
    A broadcast without storage: the input token is offered to every output at once and leaves
    the fork only when *every* output has taken it. A per-output ``taken`` flag remembers which
    outputs already took the token, so an output that is ready early takes it at once and is not
    offered it again (no duplicate), and a stalled output keeps its copy offered (no loss). The
    per-edge FIFOs behind the fork are the skid buffers; the fork itself adds no latency.

Joins consume whichever input has a token
    Both join kinds keep one ``eot`` flag per input. In a timestep, an input is accepted whenever
    it has a token and has not yet delivered its EOT; after its EOT it is held until the other
    input's EOT has arrived too, and only then does the join end the timestep (barrier: fire
    sweep, then one EOT; SEW: one EOT). When both inputs offer a token in the same cycle, a
    round-robin pointer picks one (the inputs alternate), so neither input can starve the other.
    Events of one timestep may be consumed in any order because the sums are exact (SPEC §3).

No deadlock, for every FIFO depth >= 1 (the guarantee the network top relies on)
    Assume the network is stuck and let t be the earliest timestep whose EOT some component has
    not sent; among those, take the first component C in topological order (a fork counts as
    part of its producer: a token is "sent" once every consumer queue took it). Every producer
    upstream of C has sent EOT(t), so all of C's input tokens up to EOT(t) sit in C's queues, and
    C has consumed everything up to EOT(t-1) (it sent EOT(t-1)). A layer or barrier core in its
    integrate phase takes input without needing its output, and a join never holds an input that
    has not delivered EOT(t), so C can only be stuck because its *output* is full. Its consumer D
    has not sent EOT(t) either (it needs C's EOT(t)), holds only timestep-t tokens from C, and
    is itself blocked only by its own full output; following these edges downstream must end at
    a core in its integrate phase or at the readout (whose result stream the host drains) — a
    contradiction. The argument needs exactly the two properties above: an input is never held
    before its own EOT, and a core integrates without output space. (A join that drained its
    inputs one after the other — all of the direct path, then all of the residual path —
    would deadlock as soon as the residual queue filled up with the next timestep's tokens.)
    FIFO depth therefore only buys overlap between timesteps (see ``hw.network``), never
    correctness; the tests run depths 1 and 2 with random stalls on every queue.

BarrierCore (Sparse-ResNet barrier neuron)
    Integrate: the accepted event ``(j, z)`` of input k is registered with ``z·w_k`` (``w_k`` is
    the IR's integer stream weight, a constant: no weight memory); the next cycle reads ``P[j]``,
    two cycles later ``P[j] + z·w_k`` is written — one read and one write per event, one event
    per cycle sustained, with the layer core's read-after-write forwarding
    (:class:`hw.stages.Accumulate`), so back-to-back events on the same j see each other's
    sums. After both EOTs it drains and sweeps ``j`` ascending through a
    :class:`~hw.neuron.FireUnit` with its own θ_b, N_b, v0 and no bias (bias input tied to 0),
    through the layer core's credit-counted sweep (:class:`hw.stages.Sweep`).
    Everything behind the arbiter and the product is :class:`hw.point.PointEngine`, which the
    pooling core (:mod:`hw.pool`) shares.
    Counters: ``ev_in``, ``ev_out``, ``p_rd``/``p_wr`` (= ev_in + T·N), ``syn_updates`` (= ev_in),
    ``syn_acc`` (Σ z), ``cycles``, ``saturations``; ``w_rd`` and ``b_rd`` are always 0.

SewJoin (SEW-ResNet element-wise sum, no neuron)
    A merge with a registered output stage: it forwards every EVENT of both inputs unchanged
    (values widened to the output width) and, once both inputs delivered EOT, one EOT. One token
    per cycle. Counters: ``ev_in`` = ``ev_out`` = events passed through, ``cycles``; the others
    are 0 (as in the golden model).

Early exit (``early_exit=True``, docs/early-exit.md)
    The network then runs timestep-major, so ``exit`` comes while both inputs are empty and
    the ``eot`` flags are clear. The barrier core runs the exit sweep of its engine
    (:class:`hw.point.PointEngine`: every P[j] read, v0 written, nothing emitted, N cycles,
    one ``p_rd`` and ``p_wr`` per neuron); the SEW join holds nothing across timesteps but its
    timestep counters, which return to 0 (no access, no cycle). Both close their ``cycles``
    bracket with the exit.

Combinational paths: ``i0.ready`` and ``i1.ready`` depend on the *other* input's ``valid``
(the arbiter) and, for the SEW join and the fork, on ``o.ready``; ``o.valid`` of the fork
depends on ``i.valid``. The network top puts a queue (registered ``valid``/``ready``) on every
edge, so no combinational loop can form.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.ir import LayerInfo

from .layer import CounterLayout, check_v0
from .layout import EventKind, EventLayout, index_width, value_width
from .memory import MemorySpec
from .neuron import check_choice, check_int, fire_timing
from .cores import CoreFactory
from .point import Counters, NeuronParams, PointEngine, cycle_condition, drive_counters
from .stages import times_const

__all__ = ["Fork", "BarrierCore", "SewJoin"]


class Fork(wiring.Component):
    """Broadcast one stream to ``outputs`` consumers; a token leaves when all took it.

    Timing: no storage and no latency (``o[k].valid`` follows ``i.valid`` in the same cycle);
    one token per cycle when every output is ready; a stalled output holds the input, and an
    output that already took the current token is not offered it again.

    Parameters
    ----------
    shape : shape-like
        Payload shape (e.g. an :class:`~hw.layout.EventLayout`).
    outputs : int
        Number of consumers (>= 2).

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape)).array(outputs)

    Raises
    ------
    TypeError, ValueError
        ``outputs must be an integer >= 2, not 1``; ``shape must be shape-castable, not 'x'``.
    """

    def __init__(self, *, shape, outputs=2):
        try:
            Shape.cast(shape)
        except TypeError:
            raise TypeError(f"shape must be shape-castable, not {shape!r}") from None
        self._n = check_int("outputs", outputs, minimum=2)
        self._shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)).array(self._n),
        })

    @property
    def outputs(self):
        return self._n

    def elaborate(self, platform):
        m = Module()
        taken = Signal(self._n)
        done = [taken[k] | o.ready for k, o in enumerate(self.o)]
        all_done = done[0]
        for d in done[1:]:
            all_done = all_done & d
        m.d.comb += self.i.ready.eq(all_done)
        for k, o in enumerate(self.o):
            m.d.comb += [o.valid.eq(self.i.valid & ~taken[k]), o.payload.eq(self.i.payload)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += taken.eq(0)
        with m.Else():
            for k, o in enumerate(self.o):
                with m.If(o.valid & o.ready):
                    m.d.sync += taken[k].eq(1)
        return m


def _arbitrate(m, i0, i1, open0, open1):
    """Round-robin choice between two inputs; an input is considered only while ``open``.

    Returns the two handshake conditions (never both in one cycle).
    """
    pri = Signal()          # 0: input 0 wins a tie, 1: input 1 wins
    avail0 = i0.valid & open0
    avail1 = i1.valid & open1
    m.d.comb += [
        i0.ready.eq(open0 & (~pri | ~avail1)),
        i1.ready.eq(open1 & (pri | ~avail0)),
    ]
    hs0 = i0.valid & i0.ready
    hs1 = i1.valid & i1.ready
    with m.If(hs0):
        m.d.sync += pri.eq(1)
    with m.Elif(hs1):
        m.d.sync += pri.eq(0)
    return hs0, hs1


def _join_members(in_layouts, out_layout, early_exit=False):
    """The ports of a two-input join (``docs/hw-interfaces.md``), with ``exit`` and
    ``exiting`` for the early exit (docs/early-exit.md)."""
    return {
        "i0": In(stream.Signature(in_layouts[0])),
        "i1": In(stream.Signature(in_layouts[1])),
        "o": Out(stream.Signature(out_layout)),
        "clear": In(1),
        "counters": Out(CounterLayout()),
        "overflow": Out(1),
        **({"exit": In(1), "exiting": Out(1)} if early_exit else {}),
    }


def _check_layer(layer, info, mode):
    if getattr(layer, "kind", None) != mode:
        raise TypeError(f"layer must be a golden.ir.Join with mode '{mode}', not "
                        f"{_describe(layer)}")
    if not isinstance(info, LayerInfo):
        raise TypeError(f"info must be a golden.ir.LayerInfo, not {type(info).__name__}")


def _describe(layer):
    if getattr(layer, "kind", None) in ("barrier", "sew"):
        return f"a Join with mode '{layer.mode}'"
    return type(layer).__name__


class BarrierCore(CoreFactory, wiring.Component):
    """Sparse-ResNet barrier neuron of a residual join (``Join(mode="barrier")``).

    Timing: integrate one event per cycle sustained (either input), latency
    :attr:`update_latency` (3) cycles from acceptance to the write of ``P``; an EOT pair taken
    by an idle core comes out as one EOT :attr:`eot_latency` cycles later
    (``discharge="parallel"``: N + 7); backpressure on ``o`` stalls the sweep without repeating
    an access; ``o.valid``/``o.payload`` are registers. Both measured by tests/test_timing.py.
    See the module's design note.

    Parameters
    ----------
    layer : golden.ir.Join
        A barrier join: ``threshold``, ``levels``, ``v0``, ``stream_weights``.
    info : golden.ir.LayerInfo
        ``net.info(layer.name)``: size, ``zmax_in`` per input, potential width.
    timesteps : int
        T.
    discharge : {"parallel", "serial"}
        Fire unit variant.
    early_exit : bool
        Take part in the early exit (docs/early-exit.md): ``exit`` and ``exiting`` ports.

    Members
    -------
    i0, i1 : In(stream.Signature(EventLayout(index_width(N), value_width(zmax_in[k]))))
        The two joined streams (IR ``inputs`` order), EVENT and EOT tokens.
    o : Out(stream.Signature(EventLayout(index_width(N), value_width(levels))))
        Events ``(j, z)`` in sweep order and one EOT per timestep.
    clear : In(1)
    counters : Out(CounterLayout)
        Same layout as :class:`~hw.layer.LayerCore` (``w_rd``, ``b_rd`` stay 0).
    overflow : Out(1)
        Sticky: a potential saturated (only when the width was forced narrow).
    exit : In(1)
        Only with ``early_exit``: pulse between two timesteps (the core idle, both inputs
        empty) to end the inference: the exit sweep reads every P[j] and writes v0, emits
        nothing, no EOT (N cycles); the core then takes the next inference's tokens.
    exiting : Out(1)
        Only with ``early_exit``: the exit sweep is running (a register).

    Raises
    ------
    TypeError, ValueError
        ``layer must be a golden.ir.Join with mode 'barrier', not Dense``, a v0 that does not
        fit the width, bad ``timesteps`` or ``discharge``.
    """

    def __init__(self, *, layer, info, timesteps, discharge="parallel", early_exit=False):
        self._validate(layer=layer, info=info, timesteps=timesteps, discharge=discharge)
        self._layer, self._info, self._T = layer, info, timesteps
        self._discharge = discharge
        self._early_exit = bool(early_exit)
        self._n = info.n_out
        self._pw = info.width
        self._narrow = info.width < info.safe_width
        iw = index_width(info.n_in)
        self.in_layouts = tuple(EventLayout(iw, value_width(z)) for z in info.zmax_in)
        self.out_layout = EventLayout(index_width(info.n_out), value_width(layer.levels))
        super().__init__(_join_members(self.in_layouts, self.out_layout, self._early_exit))

    @staticmethod
    def _validate(*, layer, info, timesteps, discharge):
        _check_layer(layer, info, "barrier")
        check_int("timesteps", timesteps, minimum=1)
        check_choice("discharge", discharge, ("parallel", "serial"))
        check_v0(layer, info)

    OPTIONS = ("discharge",)        # from_network: joins have no synapses

    @classmethod
    def memories(cls, net, name):
        """The memories the core of join ``name`` builds (:class:`hw.memory.MemorySpec`):
        ``pmem``, the potentials (no weight or bias memory)."""
        info, L = net.info(name), net.layer(name).lanes
        return [MemorySpec("pmem", info.n_out // L, L * info.width, False, "potentials")]

    @property
    def layer(self):
        return self._layer

    @property
    def inputs(self):
        """The input ports in IR ``inputs`` order."""
        return (self.i0, self.i1)

    @property
    def narrow(self):
        return self._narrow

    #: Cycles from accepting an event (idle core) to the write of its target's P: the
    #: engine's N read, X and A.
    update_latency = 3

    @property
    def eot_latency(self):
        """Cycles from accepting the second input's EOT (idle core) to the cycle the core
        offers its own EOT on ``o`` (never stalled): the EOT flags, the drain, the sweep's
        first read and W1, the N neurons through the fire unit one every ``interval`` cycles
        (F fire lanes: N / F groups) and its latency, the EOT into Q and out of its output
        register (F > 1: and the serializer register after it)."""
        lat, interval = fire_timing(discharge=self._discharge, levels=self._layer.levels)
        F = self._layer.fire
        return 7 + lat + (self._n // F - 1) * interval + (F > 1)

    def elaborate(self, platform):
        m = Module()
        layer, T, n = self._layer, self._T, self._n
        w0, w1 = layer.stream_weights

        # -- input: round robin between the inputs that have not sent this timestep's EOT --
        zw = max(lay.value_width for lay in self.in_layouts)
        ww = max(Const.cast(w0).shape().width, Const.cast(w1).shape().width)
        prod_shape = signed(zw + ww + 1)
        m.submodules.engine = eng = PointEngine(
            n=n, timesteps=T, potential_width=self._pw, operand_shape=prod_shape,
            out_layout=self.out_layout, combine="sum",
            neuron=NeuronParams(levels=layer.levels, threshold=layer.threshold, v0=layer.v0,
                                discharge=self._discharge),
            narrow=self._narrow, early_exit=self._early_exit, lanes=layer.lanes,
            fire=layer.fire)
        m.d.comb += eng.clear.eq(self.clear)
        if self._early_exit:
            m.d.comb += [eng.exit.eq(self.exit), self.exiting.eq(eng.exiting)]
        wiring.connect(m, wiring.flipped(self.o), eng.o)

        eot = Signal(2)
        integ = eng.integrating
        hs0, hs1 = _arbitrate(m, self.i0, self.i1, integ & ~eot[0], integ & ~eot[1])
        p0, p1 = self.i0.payload, self.i1.payload
        ev0 = hs0 & (p0.kind == EventKind.EVENT)
        ev1 = hs1 & (p1.kind == EventKind.EVENT)
        with m.If(hs0 & (p0.kind == EventKind.EOT)):
            m.d.sync += eot[0].eq(1)
        with m.If(hs1 & (p1.kind == EventKind.EOT)):
            m.d.sync += eot[1].eq(1)
        both = Signal()
        m.d.comb += [both.eq(integ & (eot == 0b11)), eng.done.eq(eot == 0b11)]
        with m.If(both):
            m.d.sync += eot.eq(0)

        # -- the update: z·w_k and its target, registered by the engine's M stage ------------
        z_in = Signal(zw)
        m.d.comb += [
            z_in.eq(Mux(hs1, p1.value, p0.value)),
            eng.upd.valid.eq(ev0 | ev1),
            eng.upd.payload.j.eq(Mux(hs1, p1.index, p0.index)),
            eng.upd.payload.operand.eq(Mux(hs1, _times(p1.value, w1), _times(p0.value, w0))),
        ]

        # -- counters -------------------------------------------------------------------------
        drive_counters(m, self, eng, ev=ev0 | ev1, acc=z_in, first_cand=hs0 | hs1,
                       input_done=both)
        return m


def _times(value, w):
    """``value · w`` for the stream weight ``w`` (a constant) in shifted copies of ``value``,
    not a DSP multiplier (:func:`hw.stages.times_const`)."""
    if w == 0:
        return Const(0, 1)
    p = times_const(value, abs(w))
    return p if w > 0 else -p


class SewJoin(wiring.Component):
    """SEW-ResNet join: forwards the events of both inputs, one EOT per timestep.

    Timing: one token per cycle through a registered output stage (latency 1 cycle); an EOT is
    emitted in the cycle after the second input EOT has been taken; a stalled ``o`` holds both
    inputs. ``o.valid`` comes from a register; ``i0.ready``/``i1.ready`` depend on ``o.ready``
    and on the other input's ``valid``.

    Parameters
    ----------
    index_width : int
        Width of the neuron index (both inputs and the output).
    in_value_widths : (int, int)
        Value widths of ``i0`` and ``i1``.
    out_value_width : int
        Value width of ``o`` (>= both input widths; the IR's sum of the input maxima).
    timesteps : int
        T (brackets the ``cycles`` counter per inference).
    early_exit : bool
        Take part in the early exit (docs/early-exit.md): ``exit`` and ``exiting`` ports.

    Members
    -------
    i0, i1 : In(stream.Signature(EventLayout(index_width, in_value_widths[k])))
    o : Out(stream.Signature(EventLayout(index_width, out_value_width)))
    clear : In(1)
    counters : Out(CounterLayout)
        ``ev_in`` = ``ev_out`` (events passed through) and ``cycles``; the others stay 0.
    overflow : Out(1)
        Always 0 (no arithmetic).
    exit : In(1)
        Only with ``early_exit``: pulse between two timesteps (the join idle) to end the
        inference. The join holds no state but its timestep counters, which return to 0; no
        access, no token, and its ``cycles`` bracket closes in that cycle.
    exiting : Out(1)
        Only with ``early_exit``: always 0 (nothing to sweep).

    Raises
    ------
    TypeError, ValueError
        e.g. ``out_value_width (2) must be at least the widest input value width (3)``.
    """

    def __init__(self, *, index_width, in_value_widths, out_value_width, timesteps,
                 early_exit=False):
        iw = check_int("index_width", index_width, minimum=1)
        if (not isinstance(in_value_widths, (tuple, list)) or len(in_value_widths) != 2):
            raise TypeError(f"in_value_widths must be a pair of positive integers, not "
                            f"{in_value_widths!r}")
        vws = tuple(check_int("in_value_widths", v, minimum=1) for v in in_value_widths)
        ow = check_int("out_value_width", out_value_width, minimum=1)
        if ow < max(vws):
            raise ValueError(f"out_value_width ({ow}) must be at least the widest input value "
                             f"width ({max(vws)})")
        self._T = check_int("timesteps", timesteps, minimum=1)
        self._early_exit = bool(early_exit)
        self.in_layouts = tuple(EventLayout(iw, v) for v in vws)
        self.out_layout = EventLayout(iw, ow)
        super().__init__(_join_members(self.in_layouts, self.out_layout, self._early_exit))

    EARLY_EXIT = True

    @classmethod
    def from_network(cls, net, name, *, discharge=None, synapse=None, early_exit=False):
        """The SEW join ``name`` of ``net`` (no neuron: ``discharge``, ``synapse`` do not
        apply)."""
        layer, info = net.layer(name), net.info(name)
        _check_layer(layer, info, "sew")
        return cls(index_width=index_width(info.n_in),
                   in_value_widths=tuple(value_width(z) for z in info.zmax_in),
                   out_value_width=value_width(info.zmax_out), timesteps=net.timesteps,
                   early_exit=early_exit)

    @classmethod
    def memories(cls, net, name):
        """The memories a SEW join builds: none (an empty list)."""
        return []

    @property
    def inputs(self):
        """The input ports in IR ``inputs`` order."""
        return (self.i0, self.i1)

    def elaborate(self, platform):
        m = Module()
        T = self._T
        eot = Signal(2)
        t_cur = Signal(range(T))
        load = Signal()
        m.d.comb += load.eq(~self.o.valid | self.o.ready)
        hs0, hs1 = _arbitrate(m, self.i0, self.i1, load & ~eot[0], load & ~eot[1])
        p0, p1 = self.i0.payload, self.i1.payload
        is_eot0 = p0.kind == EventKind.EOT
        is_eot1 = p1.kind == EventKind.EOT
        ev_in = (hs0 & ~is_eot0) | (hs1 & ~is_eot1)
        emit_eot = Signal()
        m.d.comb += emit_eot.eq(load & (eot == 0b11))
        out = self.o.payload
        with m.If(emit_eot):
            m.d.sync += [self.o.valid.eq(1), out.kind.eq(EventKind.EOT), out.index.eq(0),
                         out.value.eq(0), eot.eq(0), t_cur.eq(Mux(t_cur == T - 1, 0, t_cur + 1))]
        with m.Elif(ev_in):
            m.d.sync += [self.o.valid.eq(1), out.kind.eq(EventKind.EVENT),
                         out.index.eq(Mux(hs1, p1.index, p0.index)),
                         out.value.eq(Mux(hs1, p1.value, p0.value))]
        with m.Else():
            with m.If(hs0):
                m.d.sync += eot[0].eq(1)
            with m.If(hs1):
                m.d.sync += eot[1].eq(1)
            with m.If(self.o.ready):
                m.d.sync += self.o.valid.eq(0)

        out_hs = self.o.valid & self.o.ready
        ctr = Counters(m, self.clear, ("ev_in", "ev_out", "cycles"))
        ctr.count("ev_in", ev_in)
        ctr.count("ev_out", out_hs & (out.kind == EventKind.EVENT))
        out_t = Signal(range(T))        # timestep of the EOT in the output register
        with m.If(out_hs & (out.kind == EventKind.EOT)):
            m.d.sync += out_t.eq(Mux(out_t == T - 1, 0, out_t + 1))
        out_last = out_hs & (out.kind == EventKind.EOT) & (out_t == T - 1)
        in_last = emit_eot & (t_cur == T - 1)
        if self._early_exit:
            # between two timesteps of an exited inference: its next tokens are timestep 0's
            with m.If(self.exit):
                m.d.sync += [t_cur.eq(0), out_t.eq(0)]
            m.d.comb += self.exiting.eq(0)
            in_last, out_last = in_last | self.exit, out_last | self.exit
        ctr.count("cycles", cycle_condition(m, T, hs0 | hs1, in_last, out_last))
        c = ctr.sig
        m.d.comb += [
            self.counters.ev_in.eq(c["ev_in"]),
            self.counters.ev_out.eq(c["ev_out"]),
            self.counters.cycles.eq(c["cycles"]),
            self.overflow.eq(0),
        ]
        return m
