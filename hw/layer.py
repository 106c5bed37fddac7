"""Event layer core for dense and conv2d layers (SPEC §3–§5).

Design note
===========

One core per IR layer, with its own counted memories: weights ``W`` (read-only), biases ``B``
(read-only, one row per output neuron for dense, per output channel for conv) and potentials
``P`` (read/write, initialised to v0). A dense layer is run as a 1×1 convolution over a 1×1
image (see :class:`hw.layout.LayerGeometry`), so one address generator serves both kinds.

Integrate pipeline (one synaptic update per cycle)::

    i ──► D ──► G ──► R ──► K ──► M ──► N ──► X ──► A
          │     │     │     │     │     │     │     └ P + z·w (saturated when the width was
          │     │     │     │     │     │     │       forced narrow) → write P[j]
          │     │     │     │     │     │     └ P[j] arrives and is registered (forwarded)
          │     │     │     │     │     └ z·w completed (mul: z_lo·w + z_hi·w << zh); read P[j]
          │     │     │     │     └ z·w from the registered w (mul: the two halves z_lo·w and
          │     │     │     │       z_hi·w; serial: z additions, K, R and G wait)
          │     │     │     └ w registered (``k_w``, no reset: on ECP5 the flow moves it into the
          │     │     │       block RAM's output register, see ``flows/outreg.py``)
          │     │     └ w arrives from W (nothing but routing after the block RAM's output)
          │     └ address generator: issues read W[w_addr] for each target (ky, kx, co ascending)
          └ decode: one input token; conv: fan-out table lookup (ROM, sync read)

Every block RAM output (W, P) goes straight into a register, and the adder of A starts from
registers and is followed by a single 2:1 multiplexer, so no path crosses a memory's
clock-to-out and an adder or a multiplier.

* D loads a token when it is empty or G takes its token in the same cycle, so back-to-back
  events cost no bubble: G loads the next event during the last update of the current one.
  In front of D, a one-token skid buffer S makes ``i.ready`` a register (S empty): a token
  accepted while D is held waits in S, and D loads S's token before the input's.
* Read-after-write on P: up to two earlier updates are still in flight when an update reads
  P[j] in N: one in A, which writes P in that very cycle (after the read, which does not see
  it), and one in X, which writes it one cycle later. When the update reaches X, the first has
  moved to W1 (a register of the last write: ``w1_j``, ``w1_sum``) and the second is in A; X
  takes A's sum if A targets the same neuron (``a_j == x_j``), else W1's if W1 does, else the
  memory's data. X and A never stall, so these are the only two; older writes are already in
  the memory. Sums are therefore never stale, whatever the targets of consecutive updates
  (tested with N_out = 1, 2, 3 and repeated events, with and without gaps).
* Latency of an update: it passes the seven stages G R K M N X A (mul), so its write in A comes
  6 cycles after its issue in G and 8 after its token was accepted on ``i``
  (:meth:`LayerCore.update_latency`, measured by tests/test_timing.py); throughput one
  update per cycle sustained (mul), one per z cycles (serial). Events whose fan-out is empty
  (stride, borders) are consumed (counted in ``ev_in``) and dropped by D while G works, so they
  cost no generator cycle (D takes one token per cycle, so a run of them can still starve G).

End of timestep: an EOT token in D is taken when G is free; the core drains R, K, M, N, X and
A (at most seven cycles), then sweeps the neurons j ascending::

    sweep counter ──► read P[j], B[co(j)] ──► W1 ──► FireUnit ──► WB: write P'[j]; emit (j, z)
                                                                     └──► Q (8 + O) ──► o

Credit flow (:class:`hw.credit.CreditQueue`): the sweep issues a neuron only when Q's credit
count (a register: neurons issued and not yet written back, plus tokens in Q; returns reach
it one cycle late) is below 8, so every token that may come out of the fire unit has a place
in Q, and W1, the fire unit (parallel, readout) and WB never stall: no ready travels back
through them (``fire.o.ready`` is a constant). Q is a store of 8 registers
and the output register O (``o.valid`` and ``o.payload`` are registers; the consumer's
``o.ready`` pops O and returns a credit). W1 holds the memory read data while the serial fire
unit is busy (read enables are low meanwhile). The fire unit is a registered stream stage
(parallel: three stages, ``H = P + b``, then ``H - kθ`` for k = 1..N, then z and ``P'``, one
neuron per cycle; serial: N micro-steps per neuron). WB writes ``P'`` (v0 at the last timestep) and, when ``z > 0``, pushes
the event into Q; a stalled consumer holds the sweep counter (no credits), and no access is
repeated, so the counters stay exact under backpressure. After the last write-back the core
emits EOT and only then takes tokens of the next timestep from D (SPEC §4). The sweep issues
one neuron per cycle (parallel, no stall): eight credits cover a neuron's round trip from its
issue to the return of its credit.

The P read address is a register written one cycle ahead (M's target, or the sweep's next
neuron), so no multiplexer sits between registers and the memory. Phase tests that gate
handshakes (``integrating``, ``sweeping``, ``eot_out``, G's ``g_last`` and ``g_free``) are
registers of their own, kept equal to what they stand for, so that D's and the sweep's
handshakes start from one or two registers (the iCE40 UP5K spends 2.5–3.5 ns per LUT level
with its routing).

Readout layer: the fire unit never fires; at t < T the sweep writes H back and emits nothing
but EOT; at t = T it emits one READOUT token ``(j, H)`` per neuron, j ascending, writes v0 and
then emits EOT.

Backpressure: ``i.ready`` (S empty), ``o.valid`` and ``o.payload`` (O) are registers: no
combinational path enters or leaves the core through a handshake, and a lack of credits (not
the consumer's ``o.ready`` itself) stalls the sweep; cores are still separated by FIFOs in the
network top.

Weights in SPRAM (``weights="spram"``, iCE40 UltraPlus): ``W`` is a :class:`hw.memory.SpramBank`
(single-port ``SB_SPRAM256KA`` cells, with ``primitive=True``; its simulation model otherwise)
instead of a ROM. It has the ROM's timing (read in G, data in R, held), so the integrate
pipeline and every figure above are unchanged. SPRAM cannot be initialised at configuration:
the core gets a ``wload`` stream of packed words (``addr``, ``data``:
:func:`hw.memory.pack_words`), whose ``ready`` (a register) is high only while the core is
idle between inferences (the ``cycles`` counter's bracket empty in the previous cycle and no
first token accepted in it). A word offered during an inference is held (not
lost, not written) until the core is idle again; a word written in the cycle that the first
token of an inference is accepted lands two cycles before that token's first weight read.
Loads are not counted in ``w_rd`` (``SpramBank.writes`` has them), so ``w_rd`` still counts
one read per synaptic update.

Counters (32 bit, SPEC §5): ``w_rd``, ``p_rd``, ``p_wr``, ``b_rd`` come from the memories;
``ev_in`` counts EVENT tokens accepted, ``ev_out`` EVENT tokens sent, ``syn_updates`` and
``syn_acc`` the updates issued by G (+1, +z); ``cycles`` counts the cycles in which an inference
is in progress, from the cycle its first input token is accepted to the cycle its last EOT is
sent, inclusive; ``saturations`` the saturated additions (integrate and fire).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH
from golden.ir import Conv2d, Dense, LayerInfo

from .cores import SingleInput
from .layout import COUNTERS, EventKind, EventLayout, LayerGeometry, index_width, value_width
from .memory import CountedMemory, MemorySpec, SpramBank, spram_geometry
from .credit import CreditQueue
from .neuron import FireUnit, check_choice, check_int, fire_timing, saturate

__all__ = ["LayerCore", "CounterLayout", "check_v0", "fanout_entry_layout", "wload_layout"]


class CounterLayout(data.StructLayout):
    """All counters of a core, 32 bits each, in :data:`hw.layout.COUNTERS` order."""

    def __init__(self):
        super().__init__({name: unsigned(COUNTER_WIDTH) for name in COUNTERS})


def check_v0(layer, info):
    """The hardware stores v0 in P: it must fit the potential width in use.

    Raises
    ------
    ValueError
        ``layer 'fc0': v0 (300) does not fit its potential width 8``.
    """
    lo, hi = -(1 << (info.width - 1)), (1 << (info.width - 1)) - 1
    if not lo <= layer.v0 <= hi:
        raise ValueError(f"layer '{layer.name}': v0 ({layer.v0}) does not fit its potential "
                         f"width {info.width}")


def wload_layout(layer):
    """The payload of a spram core's ``wload`` stream: a word address of the layer's
    :class:`hw.memory.SpramBank` and the packed word."""
    _, _, lanes, words, _ = spram_geometry(layer.w_bits, int(layer.weight.size))
    return data.StructLayout({"addr": range(words), "data": 16 * lanes})


def fanout_entry_layout(geo, w_depth):
    """The row of a conv core's fan-out table (one per input neuron): its first weight
    address and target neuron, and the numbers of kernel rows and columns it reaches.

    Parameters
    ----------
    geo : hw.layout.LayerGeometry
    w_depth : int
        Rows of the weight memory (the layer's weight count).
    """
    return data.StructLayout({"w_base": range(w_depth), "j_base": range(geo.n_out),
                              "ny": range(max(1, geo.max_ny) + 1),
                              "nx": range(max(1, geo.max_nx) + 1)})


class _Phase(enum.Enum, shape=2):
    INTEGRATE = 0
    DRAIN = 1
    SWEEP = 2
    EOT_OUT = 3


class LayerCore(SingleInput, wiring.Component):
    """Event-driven core of one dense or conv2d layer.

    Timing: integrate one synaptic update per cycle sustained (``synapse="mul"``); an event's
    first potential write comes :meth:`update_latency` (8) cycles after the event was accepted;
    an EOT comes out :attr:`eot_latency` cycles after it went in (``discharge="parallel"``:
    N_out + 9); backpressure on ``o`` stalls the sweep without repeating any access. Both are
    measured in the simulator by tests/test_timing.py. See the module's design note.

    Parameters
    ----------
    layer : golden.ir.Dense or golden.ir.Conv2d
        The IR layer (weights, bias, θ, N, v0, readout).
    info : golden.ir.LayerInfo
        ``net.info(layer.name)``: shapes, ``zmax_in``, potential width.
    timesteps : int
        T, the timesteps of an inference.
    discharge : {"parallel", "serial"}
        Fire unit: N comparators, or N compare-subtract micro-steps.
    synapse : {"mul", "serial"}
        ``z·w`` with a multiplier, or with z additions of w.
    weights : {"rom", "spram"}
        Weights in a ROM initialised from the IR (block RAM or logic), or in single-port RAM
        loaded at run time through ``wload`` (:class:`hw.memory.SpramBank`; iCE40 UltraPlus).
    primitive : bool
        With ``weights="spram"``: instantiate ``SB_SPRAM256KA`` cells (synthesis for iCE40);
        else the bank's simulation model. Ignored for ``"rom"``.

    Members
    -------
    i : In(stream.Signature(EventLayout(index_width(N_in), value_width(zmax_in))))
        Input events and EOT tokens.
    o : Out(stream.Signature(EventLayout(...)))
        Output events (spiking layer) or READOUT tokens (readout layer), and EOT tokens.
    clear : In(1)
        Clears every counter and the overflow flag.
    counters : Out(CounterLayout)
        The counters of SPEC §5 plus ``cycles`` and ``saturations``.
    overflow : Out(1)
        Sticky: a potential saturated (only possible when the width was forced narrow).
    wload : In(stream.Signature(StructLayout({"addr": range(words), "data": 16 * lanes})))
        Only with ``weights="spram"``: weight words (:func:`hw.memory.pack_words`), accepted
        one per cycle while the core is idle between inferences, held otherwise.

    Raises
    ------
    TypeError, ValueError
        On invalid parameters (messages name the parameter).
    """

    def __init__(self, *, layer, info, timesteps, discharge="parallel", synapse="mul",
                 weights="rom", primitive=False):
        self._validate(layer=layer, info=info, timesteps=timesteps, discharge=discharge,
                       synapse=synapse, weights=weights)
        self._weights = weights
        self._primitive = bool(primitive)
        self._T = timesteps
        self._discharge = discharge
        self._synapse = synapse
        self._layer = layer
        self._info = info
        self._geo = LayerGeometry.of(layer, info)
        self._pw = info.width
        self._narrow = info.width < info.safe_width
        self._zmax_in = info.zmax_in_index
        self.in_layout = EventLayout(index_width(info.n_in), value_width(self._zmax_in))
        if layer.readout:
            self.out_layout = EventLayout(index_width(info.n_out), self._pw, signed_value=True)
        else:
            self.out_layout = EventLayout(index_width(info.n_out), value_width(layer.levels))
        members = {
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
            "clear": In(1),
            "counters": Out(CounterLayout()),
            "overflow": Out(1),
        }
        self.wload_layout = None
        if weights == "spram":
            self.wload_layout = wload_layout(layer)
            members["wload"] = In(stream.Signature(self.wload_layout))
        super().__init__(members)

    @staticmethod
    def _validate(*, layer, info, timesteps, discharge, synapse, weights="rom"):
        if not isinstance(layer, (Dense, Conv2d)):
            raise TypeError(f"layer must be a golden.ir.Dense or golden.ir.Conv2d, not "
                            f"{type(layer).__name__}")
        if not isinstance(info, LayerInfo):
            raise TypeError(f"info must be a golden.ir.LayerInfo, not {type(info).__name__}")
        check_int("timesteps", timesteps, minimum=1)
        check_choice("discharge", discharge, ("parallel", "serial"))
        check_choice("synapse", synapse, ("mul", "serial"))
        check_choice("weights", weights, ("rom", "spram"))
        check_v0(layer, info)

    @staticmethod
    def check(net, name):
        """Raise ``ValueError`` when the layer cannot be built (a v0 outside its width)."""
        check_v0(net.layer(name), net.info(name))

    @classmethod
    def from_network(cls, net, name, *, discharge="parallel", synapse="mul", weights="rom",
                     primitive=False):
        """The core of layer ``name`` of ``net``."""
        args = dict(layer=net.layer(name), info=net.info(name), timesteps=net.timesteps,
                    discharge=discharge, synapse=synapse, weights=weights)
        cls._validate(**args)       # before construction: a failed constructor leaves an
        return cls(**args, primitive=primitive)     # unused elaboratable behind (a warning)

    @property
    def weights(self):
        """``"rom"`` or ``"spram"``."""
        return self._weights

    @classmethod
    def memories(cls, net, name, *, weights="rom"):
        """The memories the core of layer ``name`` builds, as :class:`hw.memory.MemorySpec`:
        ``wmem`` (weights; with ``weights="spram"`` the :class:`hw.memory.SpramBank`'s packed
        words, ``spram=True``), ``bmem`` (biases, one per output channel), ``pmem``
        (potentials) and, for conv2d, ``fanout`` (the fan-out table, one row per input
        neuron)."""
        check_choice("weights", weights, ("rom", "spram"))
        layer, info = net.layer(name), net.info(name)
        geo = LayerGeometry.of(layer, info)
        w_depth = int(layer.weight.size)
        if weights == "spram":
            _, _, lanes, words, _ = spram_geometry(layer.w_bits, w_depth)
            wspec = MemorySpec("wmem", words, 16 * lanes, False, "weights", spram=True)
        else:
            wspec = MemorySpec("wmem", w_depth, layer.w_bits, True, "weights")
        specs = [
            wspec,
            MemorySpec("bmem", geo.c_out, layer.b_bits, True, "biases"),
            MemorySpec("pmem", geo.n_out, info.width, False, "potentials"),
        ]
        if geo.kind != "dense":
            specs.append(MemorySpec("fanout", geo.n_in,
                                    fanout_entry_layout(geo, w_depth).size, True,
                                    "fan-out table"))
        return specs

    @property
    def layer(self):
        return self._layer

    @property
    def geometry(self):
        return self._geo

    @property
    def narrow(self):
        """The potential width was forced below the safe width (saturating arithmetic)."""
        return self._narrow

    #: Cycles from the cycle an event is accepted on ``i`` (idle core) to the cycle the
    #: potential of its first target is written: D, then the seven stages G R K M N X A.
    UPDATE_LATENCY = 8

    def update_latency(self, z=1):
        """Cycles from accepting an event of value ``z`` (idle core) to the write of its first
        target; later targets follow one per cycle (``synapse="mul"``) or one every ``z`` cycles
        (``synapse="serial"``, whose first write also waits ``z − 1`` more cycles)."""
        return self.UPDATE_LATENCY + (z - 1 if self._synapse == "serial" else 0)

    @property
    def eot_latency(self):
        """Cycles from accepting an EOT token (idle core) to the cycle the core offers its own
        EOT on ``o`` (never stalled): a 6-cycle drain and sweep start, the N_out neurons through
        the fire unit one every ``interval`` cycles, the fire unit's latency, the output queue."""
        lat, interval = fire_timing(discharge=self._discharge, levels=self._layer.levels,
                                    readout=self._layer.readout, pipelined=True)
        return 7 + (self._geo.n_out - 1) * interval + lat

    def elaborate(self, platform):
        m = Module()
        layer, geo, T = self._layer, self._geo, self._T
        pw = self._pw
        n_out, c_out = geo.n_out, geo.c_out
        readout = layer.readout
        zw = value_width(self._zmax_in)

        # -- memories -------------------------------------------------------------------
        weight = [int(v) for v in layer.weight.reshape(-1)]
        if self._weights == "spram":
            m.submodules.wmem = wmem = SpramBank(width=layer.w_bits, depth=len(weight),
                                                 primitive=self._primitive)
        else:
            m.submodules.wmem = wmem = CountedMemory(shape=signed(layer.w_bits),
                                                     depth=len(weight), init=weight,
                                                     writable=False)
        m.submodules.bmem = bmem = CountedMemory(shape=signed(layer.b_bits), depth=c_out,
                                                 init=[int(v) for v in layer.bias],
                                                 writable=False)
        m.submodules.pmem = pmem = CountedMemory(shape=signed(pw), depth=n_out,
                                                 init=[layer.v0] * n_out)
        for mem in (wmem, bmem, pmem):
            m.d.comb += mem.clear.eq(self.clear)

        m.submodules.fire = fire = FireUnit(
            levels=layer.levels, threshold=layer.threshold, potential_width=pw,
            bias_width=layer.b_bits, index_width=index_width(n_out), v0=layer.v0,
            discharge=self._discharge, readout=readout, saturate=self._narrow, pipelined=True)
        m.d.comb += fire.clear.eq(self.clear)

        phase = Signal(_Phase)
        integrating = Signal(init=1)        # phase == INTEGRATE, as a register of its own
        sweeping = Signal()                 # phase == SWEEP, likewise
        eot_out = Signal()                  # phase == EOT_OUT, likewise
        t_cur = Signal(range(T))
        last_t = Signal()
        m.d.comb += last_t.eq(t_cur == T - 1)

        # -- S, D: skid buffer, then decode one input token --------------------------------------
        # i.ready is S's emptiness, a register: the upstream handshake (and the counters it
        # enables) never waits for G's state. A token that arrives while D is held waits in S,
        # and D takes S's token before the input's.
        s_valid = Signal()
        s_tok = Signal(self.in_layout)
        d_valid = Signal()
        d_kind = Signal(EventKind)
        d_z = Signal(zw)
        d_take = Signal()
        d_load = Signal()
        in_hs = Signal()
        nxt = Signal(self.in_layout)        # the token D loads: S's if any, else the input's
        m.d.comb += [
            self.i.ready.eq(~s_valid),
            in_hs.eq(self.i.valid & ~s_valid),
            nxt.eq(Mux(s_valid, s_tok.as_value(), self.i.payload.as_value())),
            d_load.eq((s_valid | self.i.valid) & (~d_valid | d_take)),
        ]
        # The valid flags as plain logic of registers and d_take (no enables): D is full next
        # cycle when it keeps its token or when a token is offered (S's or the input's); S
        # keeps or takes a token that D does not load.
        m.d.sync += [
            d_valid.eq(s_valid | self.i.valid | (d_valid & ~d_take)),
            s_valid.eq((s_valid | self.i.valid) & ~d_load),
        ]
        with m.If(d_load):
            m.d.sync += [d_kind.eq(nxt.kind), d_z.eq(nxt.value)]
        with m.If(in_hs & ~d_load):
            m.d.sync += s_tok.eq(self.i.payload)

        w_depth = len(weight)
        jw = range(n_out)
        wa = range(w_depth)
        ny_max, nx_max = max(1, geo.max_ny), max(1, geo.max_nx)
        if geo.kind == "dense":
            d_wbase = Signal(wa)
            with m.If(d_load):
                # index·c_out as shifts and adds: a constant multiplication that yosys would
                # otherwise map to a DSP, whose delay would then sit behind the skid mux.
                m.d.sync += d_wbase.eq(sum(nxt.index << k for k in range(c_out.bit_length())
                                           if (c_out >> k) & 1))
            d_jbase = Const(0, jw)
            d_ny = Const(1, range(ny_max + 1))
            d_nx = Const(1, range(nx_max + 1))
        else:
            entry = fanout_entry_layout(geo, w_depth)
            m.submodules.fanout = table = Memory(
                shape=entry, depth=geo.n_in,
                init=[{"w_base": geo.w_base[i], "j_base": geo.j_base[i], "ny": geo.ny[i],
                       "nx": geo.nx[i]} for i in range(geo.n_in)])
            tp = table.read_port()
            m.d.comb += [tp.addr.eq(nxt.index), tp.en.eq(d_load)]
            d_wbase, d_jbase, d_ny, d_nx = tp.data.w_base, tp.data.j_base, tp.data.ny, tp.data.nx

        # -- G: address generator -----------------------------------------------------------
        g_busy = Signal()
        g_z = Signal(zw)
        g_w, g_wab, g_wa = Signal(wa), Signal(wa), Signal(wa)
        g_j, g_jab, g_ja = Signal(jw), Signal(jw), Signal(jw)
        g_co = Signal(range(c_out))
        g_b, g_nx = Signal(range(nx_max + 1)), Signal(range(nx_max + 1))
        g_a, g_ny = Signal(range(ny_max + 1)), Signal(range(ny_max + 1))
        # Registered "last" flags (g_co == c_out - 1, g_b == g_nx - 1, g_a == g_ny - 1), updated
        # with the counters, so that D's handshake does not wait for three comparators; g_last
        # is their AND, kept in a register of its own (updated with them: D's handshake then
        # starts from two registers).
        # A layer whose events never fan out over more than one pixel (dense, 1x1 kernels)
        # only counts output channels: its b and a loops are constant-folded away.
        single = ny_max == 1 and nx_max == 1
        g_last_co = Signal(name="g_last_co")
        g_last_b = Const(1, 1) if single else Signal(name="g_last_b")
        g_last_a = Const(1, 1) if single else Signal(name="g_last_a")
        g_last = Signal(name="g_last")
        g_free = Signal(init=1)     # ~g_busy | g_last, a register (updated with both)
        one_co = Const(int(c_out == 1), 1)
        g_adv = Signal()
        r_accept = Signal()
        m.d.comb += g_adv.eq(g_busy & r_accept)

        m.d.comb += [wmem.rd_addr.eq(g_w), wmem.rd_en.eq(g_adv)]
        with m.If(g_adv):
            with m.If(~g_last_co):
                m.d.sync += [g_co.eq(g_co + 1), g_w.eq(g_w + 1), g_j.eq(g_j + geo.hw_out),
                             g_last_co.eq(g_co + 2 == c_out),
                             g_last.eq((g_co + 2 == c_out) & g_last_b & g_last_a),
                             g_free.eq((g_co + 2 == c_out) & g_last_b & g_last_a)]
            if not single:
                with m.Elif(~g_last_b):
                    m.d.sync += [g_co.eq(0), g_b.eq(g_b + 1), g_last_co.eq(int(c_out == 1)),
                                 g_last_b.eq(g_b + 2 == g_nx),
                                 g_last.eq(one_co & (g_b + 2 == g_nx) & g_last_a),
                                 g_free.eq(one_co & (g_b + 2 == g_nx) & g_last_a),
                                 g_wab.eq(g_wab + geo.w_step_b), g_w.eq(g_wab + geo.w_step_b),
                                 g_jab.eq(g_jab - 1), g_j.eq(g_jab - 1)]
                with m.Elif(~g_last):
                    m.d.sync += [g_co.eq(0), g_b.eq(0), g_a.eq(g_a + 1),
                                 g_last_co.eq(int(c_out == 1)),
                                 g_last_b.eq(g_nx == 1), g_last_a.eq(g_a + 2 == g_ny),
                                 g_last.eq(one_co & (g_nx == 1) & (g_a + 2 == g_ny)),
                                 g_free.eq(one_co & (g_nx == 1) & (g_a + 2 == g_ny)),
                                 g_wa.eq(g_wa + geo.w_step_a), g_wab.eq(g_wa + geo.w_step_a),
                                 g_w.eq(g_wa + geo.w_step_a),
                                 g_ja.eq(g_ja - geo.w_out), g_jab.eq(g_ja - geo.w_out),
                                 g_j.eq(g_ja - geo.w_out)]
            with m.Else():
                m.d.sync += [g_busy.eq(0), g_free.eq(1)]

        # An event without targets (stride, borders) leaves D at once, even while G is busy, so
        # it costs no generator cycle; everything else waits for G to be free.
        d_empty = (d_kind == EventKind.EVENT) & ((d_ny == 0) | (d_nx == 0))
        if self._synapse == "mul":
            # R, K and M never stall (r_accept is constant), so G takes the next token when it
            # is idle or on its last update: g_free, from a register.
            g_takes = g_free
        else:
            g_takes = ~g_busy | (g_adv & g_last)
        m.d.comb += d_take.eq(integrating & d_valid & (d_empty | g_takes))
        with m.If(d_take):
            with m.If(d_kind == EventKind.EOT):
                m.d.sync += [phase.eq(_Phase.DRAIN), integrating.eq(0)]
            with m.Elif((d_ny != 0) & (d_nx != 0)):
                m.d.sync += [
                    g_busy.eq(1), g_z.eq(d_z),
                    g_w.eq(d_wbase), g_wab.eq(d_wbase), g_wa.eq(d_wbase),
                    g_j.eq(d_jbase), g_jab.eq(d_jbase), g_ja.eq(d_jbase),
                    g_co.eq(0), g_b.eq(0), g_a.eq(0), g_ny.eq(d_ny), g_nx.eq(d_nx),
                    g_last_co.eq(int(c_out == 1)),
                    g_last.eq(one_co & (d_nx == 1) & (d_ny == 1)),
                    g_free.eq(one_co & (d_nx == 1) & (d_ny == 1)),
                ]
                if not single:
                    m.d.sync += [g_last_b.eq(d_nx == 1), g_last_a.eq(d_ny == 1)]

        # -- R: w arrives from W; K: w registered (no logic after the block RAM's output) ----
        r_valid = Signal()
        r_j = Signal(jw)
        r_z = Signal(zw)
        r_move = Signal()       # R hands w to K this cycle
        k_valid = Signal()
        k_j = Signal(jw)
        k_z = Signal(zw)
        # No reset: on ECP5 the flow moves k_w into the block RAM's output register (REGMODE
        # OUTREG, see flows/outreg.py), which has none; k_valid tells when k_w is meaningful.
        k_w = Signal(signed(layer.w_bits), reset_less=True)
        k_accept = Signal()
        k_move = Signal()       # K hands w to M this cycle
        m_accept = Signal()
        m.d.comb += [
            k_accept.eq(~k_valid | m_accept),
            r_accept.eq(~r_valid | k_accept),
            r_move.eq(r_valid & k_accept),
            k_move.eq(k_valid & m_accept),
        ]
        with m.If(g_adv):
            m.d.sync += [r_valid.eq(1), r_j.eq(g_j), r_z.eq(g_z)]
        with m.Elif(r_move):
            m.d.sync += r_valid.eq(0)
        with m.If(r_move):
            m.d.sync += [k_valid.eq(1), k_j.eq(r_j), k_z.eq(r_z), k_w.eq(wmem.rd_data)]
        with m.Elif(k_move):
            m.d.sync += k_valid.eq(0)

        # -- M: z·w (mul: two halves; serial: z additions) -----------------------------------
        m_valid = Signal()
        m_j = Signal(jw)
        m_z = Signal(zw)
        m_w = Signal(signed(layer.w_bits), reset_less=True)
        m_issue = Signal()      # M hands its product (or its two halves) to N this cycle
        prod_shape = signed(zw + layer.w_bits + 1)
        m_prod = Signal(prod_shape)
        w_data = m_w
        with m.If(k_move):
            m.d.sync += [m_j.eq(k_j), m_z.eq(k_z), m_w.eq(k_w)]
        zh = (zw + 1) // 2          # z = z_lo + z_hi << zh
        half_shape = signed(zh + layer.w_bits + 1)
        m_lo, m_hi = Signal(half_shape), Signal(half_shape)
        if self._synapse == "mul":
            # z·w in two cycles, z_lo·w and z_hi·w in M and their sum in N: an unregistered
            # DSP multiplier (ECP5's MULT18X18D: 3.9 ns) or a full adder tree would not fit a
            # 150 MHz cycle. A narrow half is a few shifted copies of w and a small adder tree.
            def times(z_part):
                if len(z_part) <= 4:
                    parts = [Mux(z_part[k], w_data, 0).as_signed() << k
                             for k in range(len(z_part))]
                    return sum(parts[1:], parts[0])
                return z_part * w_data
            m.d.comb += [m_lo.eq(times(m_z[:zh]))]
            if zw > zh:
                m.d.comb += m_hi.eq(times(m_z[zh:]))
            m.d.comb += [m_accept.eq(1), m_issue.eq(m_valid)]
            m.d.sync += m_valid.eq(k_move)
        else:
            # z additions of w into a local accumulator; R and the generator wait meanwhile
            # (M holds w in m_w), so w is read once per update.
            m_k = Signal(zw)
            m_acc = Signal(prod_shape)
            m_done = Signal()
            m.d.comb += [
                m_done.eq(m_valid & (m_k + 1 >= m_z)),
                m_accept.eq(~m_valid | m_done),
                m_issue.eq(m_done),
                m_prod.eq(m_acc + Mux(m_z != 0, w_data, 0)),
            ]
            with m.If(m_valid & ~m_done):
                m.d.sync += [m_acc.eq(m_prod), m_k.eq(m_k + 1)]
            with m.If(k_move):
                m.d.sync += [m_valid.eq(1), m_acc.eq(0), m_k.eq(0)]
            with m.Elif(m_done):
                m.d.sync += m_valid.eq(0)

        # -- X: P[j] arrives; registered into A, forwarded from A's and W1's writes ----------
        # M's read of P does not see A's write of the same cycle (now in W1), nor the write of
        # the update that was in X then (now in A); X takes the newer of these two sums when it
        # targets the same neuron, else the memory's data. Older updates have written P[j]
        # before the read. X and A never stall, so no other update can be in flight between
        # the read and the add.
        # -- N: z·w completed (mul: z_lo·w + z_hi·w << zh); read P[n_j] ----------------------
        n_valid = Signal()
        n_j = Signal(jw)
        n_prod = Signal(prod_shape)
        m.d.sync += n_valid.eq(m_issue)
        if self._synapse == "mul":
            n_lo, n_hi = Signal(half_shape), Signal(half_shape)
            with m.If(m_issue):
                m.d.sync += [n_j.eq(m_j), n_lo.eq(m_lo), n_hi.eq(m_hi)]
            m.d.comb += n_prod.eq(n_lo + (n_hi << zh))
        else:
            n_sum = Signal(prod_shape)
            with m.If(m_issue):
                m.d.sync += [n_j.eq(m_j), n_sum.eq(m_prod)]
            m.d.comb += n_prod.eq(n_sum)

        x_valid = Signal()
        x_j = Signal(jw)
        x_prod = Signal(prod_shape)
        m.d.sync += x_valid.eq(n_valid)
        with m.If(n_valid):
            m.d.sync += [x_j.eq(n_j), x_prod.eq(n_prod)]

        # -- A: P + z·w, write P ------------------------------------------------------------
        a_valid = Signal()
        a_j = Signal(jw)
        a_prod = Signal(prod_shape)
        a_p = Signal(signed(pw))
        a_sum = Signal(signed(pw))
        # W1: the write of the previous cycle (A's), which M's read did not see.
        w1_valid = Signal()
        w1_j = Signal(jw)
        w1_sum = Signal(signed(pw))
        m.d.sync += [a_valid.eq(x_valid), w1_valid.eq(a_valid)]
        with m.If(a_valid):
            m.d.sync += [w1_j.eq(a_j), w1_sum.eq(a_sum)]
        # The older choice (W1 or memory) is made from registers while A adds, so only one
        # 2:1 multiplexer follows A's adder.
        x_older = Mux(w1_valid & (w1_j == x_j), w1_sum, pmem.rd_data)
        with m.If(x_valid):
            m.d.sync += [a_j.eq(x_j), a_prod.eq(x_prod),
                         a_p.eq(Mux(a_valid & (a_j == x_j), a_sum, x_older))]
        a_full = a_p + a_prod
        a_sat = Signal()
        saturate(m, a_full, a_sum, a_sat, enabled=self._narrow)

        # -- sweep: read P[j], B[co] → W1 → fire unit → write-back ----------------------------
        # Credit flow: a neuron is issued only when the output queue Q has room for every token
        # that may still arrive, counted in one register (Q's credits: neurons between issue and
        # write-back, plus tokens in Q). W1, the fire unit and the write-back therefore never
        # stall, and no ready travels back through them (``fire.o.ready`` is a constant).
        q_depth = 8                 # Q's store (power of two: its pointers wrap)
        q_cap = 8                   # credits: Q never overflows; 8 keep up one neuron per cycle
        q_room = Signal()
        s_j = Signal(range(n_out + 1))
        s_more = Signal(init=1)     # s_j != n_out, registered
        s_co = Signal(range(c_out))
        s_pix = Signal(range(geo.hw_out))
        w1_valid = Signal()
        w1_j = Signal(jw)
        s_issue = Signal()
        # fire.i.ready is a register, and always high for the parallel and readout units (their
        # output is never stalled); the serial unit takes a neuron every N + 2 cycles.
        m.d.comb += s_issue.eq(sweeping & s_more & q_room
                               & (~w1_valid | fire.i.ready))
        with m.If(s_issue):
            m.d.sync += [w1_valid.eq(1), w1_j.eq(s_j), s_j.eq(s_j + 1),
                         s_more.eq(s_j + 1 != n_out)]
            with m.If(s_pix == geo.hw_out - 1):
                m.d.sync += [s_pix.eq(0), s_co.eq(s_co + 1)]
            with m.Else():
                m.d.sync += s_pix.eq(s_pix + 1)
        with m.Elif(fire.i.ready):
            m.d.sync += w1_valid.eq(0)
        m.d.comb += [
            fire.i.valid.eq(w1_valid),
            fire.i.payload.index.eq(w1_j),
            fire.i.payload.p.eq(pmem.rd_data),
            fire.i.payload.b.eq(bmem.rd_data),
            fire.i.payload.last.eq(last_t),
            bmem.rd_addr.eq(s_co),
            bmem.rd_en.eq(s_issue),
        ]

        # P's read port: the integrate pipeline outside the sweep, the sweep during it. The
        # address is a register written one cycle ahead (R's target when R hands over to M, the
        # sweep's next neuron), so no multiplexer sits in front of the memory; the two read
        # enables are never high together (M is empty during the sweep).
        p_raddr = Signal(jw)
        drain_done = Signal()
        m.d.comb += drain_done.eq((phase == _Phase.DRAIN) & ~g_busy & ~r_valid & ~k_valid
                                  & ~m_valid & ~n_valid & ~x_valid & ~a_valid)
        with m.If(m_issue):
            m.d.sync += p_raddr.eq(m_j)
        with m.Elif(s_issue):
            m.d.sync += p_raddr.eq(s_j + 1)
        with m.Elif(drain_done):
            m.d.sync += p_raddr.eq(0)
        m.d.comb += [pmem.rd_addr.eq(p_raddr), pmem.rd_en.eq(s_issue | n_valid)]

        if readout:
            emit = Signal()
            m.d.comb += emit.eq(last_t)
            ev_kind, ev_value = EventKind.READOUT, fire.o.payload.h
        else:
            emit = fire.o.payload.z != 0
            ev_kind, ev_value = EventKind.EVENT, fire.o.payload.z
        wb = Signal()
        wb_count = Signal(range(n_out))
        m.d.comb += [fire.o.ready.eq(1), wb.eq(fire.o.valid)]
        with m.If(wb):
            m.d.comb += [pmem.wr_addr.eq(fire.o.payload.index), pmem.wr_data.eq(fire.o.payload.p),
                         pmem.wr_en.eq(1)]
        with m.Else():
            m.d.comb += [pmem.wr_addr.eq(a_j), pmem.wr_data.eq(a_sum), pmem.wr_en.eq(a_valid)]

        # -- output stream: the queue Q ----------------------------------------------------------
        # Q is a store of q_depth registers (written at its tail, never full thanks to the
        # credits) and the output register O, loaded from the store's head: o.valid and
        # o.payload are registers, and the consumer's ready only pops O and returns a credit.
        # (Registers rather than lib.fifo: yosys would put so small a FIFO into a block RAM,
        # whose clock-to-out would then start the network's next path.) ``last`` marks the EOT
        # of the inference's last timestep.
        tok_layout = data.StructLayout({"tok": self.out_layout, "last": 1})
        t_tok = Signal(tok_layout)
        t_push = Signal()
        t_eot = Signal()            # EOT_OUT sends its EOT this cycle
        m.d.comb += t_eot.eq(eot_out & q_room)
        with m.If(eot_out):
            m.d.comb += [t_push.eq(q_room), t_tok.tok.kind.eq(EventKind.EOT),
                         t_tok.last.eq(last_t)]
        with m.Else():
            m.d.comb += [
                t_push.eq(wb & emit),
                t_tok.tok.kind.eq(ev_kind),
                t_tok.tok.index.eq(fire.o.payload.index),
                t_tok.tok.value.eq(ev_value),
            ]
        m.submodules.q = q = CreditQueue(shape=tok_layout, depth=q_depth, credits=q_cap)
        m.d.comb += [
            q.take.eq(s_issue | t_eot),     # never both: SWEEP and EOT_OUT are phases
            q.drop.eq(wb & ~emit),
            q.w_en.eq(t_push),
            q.w_data.eq(t_tok),
            q_room.eq(q.room),
            self.o.valid.eq(q.o.valid),
            self.o.payload.eq(q.o.payload.tok),
            q.o.ready.eq(self.o.ready),
        ]
        out_hs = self.o.valid & self.o.ready

        # -- phases ---------------------------------------------------------------------------
        with m.Switch(phase):
            with m.Case(_Phase.DRAIN):
                with m.If(drain_done):
                    m.d.sync += [phase.eq(_Phase.SWEEP), sweeping.eq(1)]
            with m.Case(_Phase.SWEEP):
                with m.If(wb):
                    m.d.sync += wb_count.eq(wb_count + 1)
                    with m.If(wb_count == n_out - 1):
                        m.d.sync += [phase.eq(_Phase.EOT_OUT), sweeping.eq(0), eot_out.eq(1),
                                     wb_count.eq(0)]
            with m.Case(_Phase.EOT_OUT):
                with m.If(t_eot):
                    m.d.sync += [phase.eq(_Phase.INTEGRATE), integrating.eq(1), eot_out.eq(0),
                                 s_j.eq(0), s_more.eq(1), s_co.eq(0), s_pix.eq(0),
                                 t_cur.eq(Mux(last_t, 0, t_cur + 1))]

        # -- counters -------------------------------------------------------------------------
        ctr = {name: Signal(COUNTER_WIDTH, name=f"ctr_{name}")
               for name in ("ev_in", "ev_out", "syn_updates", "syn_acc", "cycles",
                            "saturations")}

        def count(name, cond, inc=1):
            with m.If(self.clear):
                m.d.sync += ctr[name].eq(0)
            with m.Elif(cond):
                m.d.sync += ctr[name].eq(ctr[name] + inc)

        count("ev_in", in_hs & (self.i.payload.kind == EventKind.EVENT))
        count("ev_out", out_hs & (self.o.payload.kind == EventKind.EVENT))
        count("syn_updates", g_adv)
        count("syn_acc", g_adv, g_z)
        count("saturations", a_valid & a_sat)

        # Inference bracketing for the cycle counter: the first token of an inference is the
        # first accepted after the T-th EOT of the previous one; the last is the T-th EOT sent.
        in_started = Signal()
        in_eots = Signal(range(T))
        in_first = Signal()
        out_last = Signal()
        in_flight = Signal(range(3))
        m.d.comb += [
            in_first.eq(in_hs & ~in_started),
            out_last.eq(out_hs & (q.o.payload.tok.kind == EventKind.EOT) & q.o.payload.last),
        ]
        with m.If(in_hs):
            m.d.sync += in_started.eq(1)
            with m.If(self.i.payload.kind == EventKind.EOT):
                with m.If(in_eots == T - 1):
                    m.d.sync += [in_eots.eq(0), in_started.eq(0)]
                with m.Else():
                    m.d.sync += in_eots.eq(in_eots + 1)
        m.d.sync += in_flight.eq(in_flight + in_first - out_last)
        count("cycles", (in_flight != 0) | in_first)

        if self._weights == "spram":
            # Loads only while no inference is in the core. ``wl_idle`` is a register: no
            # inference in the previous cycle and none started in it, which implies none now
            # (nothing to send, so in_flight cannot fall), so the SPRAM's write enable and
            # chip selects start from registers. A word accepted together with an inference's
            # first token is written two cycles before G's first read (D, then G).
            wl_idle = Signal(init=1)
            m.d.sync += wl_idle.eq((in_flight == 0) & ~in_first)
            m.d.comb += [
                self.wload.ready.eq(wl_idle),
                wmem.wr_addr.eq(self.wload.payload.addr),
                wmem.wr_data.eq(self.wload.payload.data),
                wmem.wr_en.eq(self.wload.valid & self.wload.ready),
            ]

        ovf = Signal()
        with m.If(self.clear):
            m.d.sync += ovf.eq(0)
        with m.Elif(a_valid & a_sat):
            m.d.sync += ovf.eq(1)
        m.d.comb += self.overflow.eq(ovf | fire.overflow)

        # Internal signals for benchmarks and debugging in the Amaranth simulator.
        self.probe = {"g_adv": g_adv, "g_busy": g_busy, "phase": phase, "d_valid": d_valid}

        m.d.comb += [
            self.counters.ev_in.eq(ctr["ev_in"]),
            self.counters.ev_out.eq(ctr["ev_out"]),
            self.counters.w_rd.eq(wmem.reads),
            self.counters.p_rd.eq(pmem.reads),
            self.counters.p_wr.eq(pmem.writes),
            self.counters.b_rd.eq(bmem.reads),
            self.counters.syn_updates.eq(ctr["syn_updates"]),
            self.counters.syn_acc.eq(ctr["syn_acc"]),
            self.counters.cycles.eq(ctr["cycles"]),
            self.counters.saturations.eq(ctr["saturations"] + fire.saturations),
        ]
        return m
