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

The stages are components: S and D :class:`hw.stages.SkidBuffer`, G
:class:`hw.integrate.AddressGenerator`, R K M N :class:`hw.integrate.SynapsePipe`, X A and W1
:class:`hw.stages.Accumulate`, and everything after the drain :class:`hw.stages.Sweep` (the
last two shared with :class:`hw.point.PointEngine`, so with the barrier and pooling cores). The
core owns the memories and their port multiplexing.

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

Bit-serial layer (``coding="bitserial"``, docs/bitserial.md): P starts at 0; the fire unit is
a :class:`hw.neuron.BitSerialUnit` (latency 1) and the sweep follows the schedule of
:class:`hw.stages.Sweep` with ``bitserial=True``: at the input EOTs of t < T a doubling sweep
(P ← 2P, nothing emitted, no EOT), at the T-th T fire sweeps back to back with their EOTs; the
bias is read in the first fire sweep only. :attr:`LayerCore.eot_latency` describes rate cores.

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
sent, inclusive; ``saturations`` the saturated additions (integrate and fire); ``shifts`` the
write-backs of the doubling sweeps (P ← 2P; bit-serial cores only, a constant 0 otherwise).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH
from golden.ir import Conv2d, Dense, LayerInfo

from .cores import SingleInput
from .integrate import AddressGenerator, SynapsePipe, product_shape
from .layout import COUNTERS, EventKind, EventLayout, LayerGeometry, index_width, value_width
from .memory import (CountedMemory, MemorySpec, SpramBank, pack_words, split_columns,
                     spram_geometry)
from .neuron import BitSerialUnit, FireUnit, check_choice, check_int, fire_timing
from .stages import (Accumulate, Counters, SkidBuffer, Sweep, inference_bracket,
                     sweep_index_width, times_const)

#: Where a layer core keeps its weights: a ROM (block RAM or logic, as yosys chooses), a ROM
#: in block RAM, or SPRAM banks loaded at run time.
WEIGHT_STORES = ("rom", "block", "spram")

__all__ = ["LayerCore", "WEIGHT_STORES", "CounterLayout", "check_v0", "check_lanes", "pack_lanes",
           "fanout_entry_layout", "wload_layout"]


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


def check_lanes(layer, weights="rom"):
    """The lanes the core can build (docs/lanes.md): any divisor of a dense layer's outputs
    or a conv2d layer's output channels; not on a conv2d readout (its potentials must leave in
    index order, and lanes emit them by channel word). With weights in SPRAM the bank holds
    L-lane words (:func:`spram_elements`).

    Raises
    ------
    ValueError
        ``layer 'c': lanes > 1 on a conv2d readout is not supported (lanes 2): its potentials
        must leave in index order; use lanes 1``.
    """
    lanes = getattr(layer, "lanes", 1)
    if lanes == 1:
        return
    if getattr(layer, "coding", "rate") == "bitserial":
        raise ValueError(f"layer '{layer.name}': lanes > 1 on a bit-serial layer is not "
                         f"supported (lanes {lanes}); use lanes 1")
    if isinstance(layer, Conv2d) and layer.readout:
        raise ValueError(f"layer '{layer.name}': lanes > 1 on a conv2d readout is not "
                         f"supported (lanes {lanes}): its potentials must leave in index "
                         f"order; use lanes 1")


def pack_lanes(values, width, lanes):
    """Words of ``lanes`` consecutive ``width``-bit two's-complement values, lane 0 in the low
    bits (the layout of a core's wide W, B and P words)."""
    values = [int(v) for v in values]
    mask = (1 << width) - 1
    return [sum((values[w * lanes + k] & mask) << (k * width) for k in range(lanes))
            for w in range(len(values) // lanes)]


def spram_elements(layer):
    """``(width, depth, values)`` of the :class:`hw.memory.SpramBank` that holds a layer's
    weights: with L lanes its elements are the L-lane weight words (:func:`pack_lanes`,
    ``L·W_BITS`` bits, as signed integers), so one read gives the L weights of a cycle."""
    flat = [int(v) for v in layer.weight.reshape(-1)]
    L = getattr(layer, "lanes", 1)
    if L == 1:
        return layer.w_bits, len(flat), flat
    width = L * layer.w_bits
    words = pack_lanes(flat, layer.w_bits, L)
    return width, len(words), [w - (1 << width) if w >> (width - 1) else w for w in words]


def spram_layer_geometry(layer):
    """:func:`hw.memory.spram_geometry` of a layer's SPRAM bank (:func:`spram_elements`)."""
    width, depth, _ = spram_elements(layer)
    return spram_geometry(width, depth)


def spram_load_words(layer):
    """The ``wload`` words of a layer's SPRAM bank, in word-address order
    (:func:`hw.memory.pack_words` of :func:`spram_elements`)."""
    width, _, values = spram_elements(layer)
    return pack_words(values, width)


def wload_layout(layer):
    """The payload of a spram core's ``wload`` stream: a word address of the layer's
    :class:`hw.memory.SpramBank` and the packed word."""
    _, _, lanes, words, _ = spram_layer_geometry(layer)
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
    weights : {"rom", "block", "spram"}
        Weights in a ROM initialised from the IR (block RAM or logic, as yosys' cost model
        chooses; ``"block"``: in block RAM whatever it chooses, ``CountedMemory(block=True)``),
        or in single-port RAM loaded at run time through ``wload`` (:class:`hw.memory.SpramBank`;
        iCE40 UltraPlus).
    primitive : bool
        With ``weights="spram"``: instantiate ``SB_SPRAM256KA`` cells (synthesis for iCE40);
        else the bank's simulation model. Ignored for ``"rom"``.
    ram_width : int or None
        Build the W, B and P memories whose words are wider than this (lanes) as several
        memories of at most ``ram_width`` bits side by side (:class:`hw.memory.CountedMemory`'s
        ``max_width``; 18 for ECP5 block RAM, :data:`flows.fit.DEVICES`). Same behaviour.

    Members
    -------
    i : In(stream.Signature(EventLayout(index_width(N_in), value_width(zmax_in))))
        Input events and EOT tokens.
    o : Out(stream.Signature(EventLayout(...)))
        Output events (spiking layer) or READOUT tokens (readout layer), and EOT tokens.
    clear : In(1)
        Clears every counter and the overflow flag.
    counters : Out(CounterLayout)
        The counters of SPEC §5 plus ``cycles``, ``saturations``, the word counters and
        ``shifts`` (:data:`hw.layout.COUNTERS`).
    overflow : Out(1)
        Sticky: a potential saturated (only possible when the width was forced narrow).
    wload : In(stream.Signature(StructLayout({"addr": range(words), "data": 16 * lanes})))
        Only with ``weights="spram"``: weight words (:func:`hw.memory.pack_words`), accepted
        one per cycle while the core is idle between inferences, held otherwise.
    exit : In(1)
        Only with ``early_exit=True`` (docs/early-exit.md): pulse between two timesteps (the
        core idle, its input empty) to end the inference: the exit sweep reads and writes
        every potential (v0), reads no bias, emits nothing (a readout: its potentials as
        READOUT tokens) and no EOT; the core then takes the next inference's tokens. A
        readout with ``early_exit`` emits its potentials at every timestep.
    exiting : Out(1)
        Only with ``early_exit=True``: the exit sweep is running (a register).

    Raises
    ------
    TypeError, ValueError
        On invalid parameters (messages name the parameter).
    """

    EARLY_EXIT = True           # takes part in the early exit (hw.cores)

    def __init__(self, *, layer, info, timesteps, discharge="parallel", synapse="mul",
                 weights="rom", primitive=False, ram_width=None, early_exit=False):
        self._validate(layer=layer, info=info, timesteps=timesteps, discharge=discharge,
                       synapse=synapse, weights=weights)
        if ram_width is not None:
            check_int("ram_width", ram_width, minimum=1)
        self._ram_width = ram_width
        self._weights = weights
        self._primitive = bool(primitive)
        self._early_exit = bool(early_exit)
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
        if self._early_exit:
            members["exit"] = In(1)
            members["exiting"] = Out(1)
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
        check_choice("weights", weights, WEIGHT_STORES)
        check_v0(layer, info)
        check_lanes(layer, weights)

    @staticmethod
    def check(net, name):
        """Raise ``ValueError`` when the layer cannot be built (a v0 outside its width, lanes
        the core does not build)."""
        check_v0(net.layer(name), net.info(name))
        check_lanes(net.layer(name))

    @classmethod
    def from_network(cls, net, name, *, discharge="parallel", synapse="mul", weights="rom",
                     primitive=False, ram_width=None, early_exit=False):
        """The core of layer ``name`` of ``net``."""
        args = dict(layer=net.layer(name), info=net.info(name), timesteps=net.timesteps,
                    discharge=discharge, synapse=synapse, weights=weights)
        cls._validate(**args)       # before construction: a failed constructor leaves an
        return cls(**args, primitive=primitive,     # unused elaboratable behind (a warning)
                   ram_width=ram_width, early_exit=early_exit)

    @property
    def weights(self):
        """``"rom"``, ``"block"`` or ``"spram"``."""
        return self._weights

    @classmethod
    def memories(cls, net, name, *, weights="rom", ram_width=None):
        """The memories the core of layer ``name`` builds, as :class:`hw.memory.MemorySpec`:
        ``wmem`` (weights; with ``weights="spram"`` the :class:`hw.memory.SpramBank`'s packed
        words, ``spram=True``), ``bmem`` (biases, one per output channel), ``pmem``
        (potentials) and, for conv2d, ``fanout`` (the fan-out table, one row per input
        neuron). With ``ram_width`` (the core's), W, B and P words wider than it are the
        column memories the core builds (``wmem[0:18]``, ``wmem[18:36]``, ...)."""
        check_choice("weights", weights, WEIGHT_STORES)
        layer, info = net.layer(name), net.info(name)
        geo = LayerGeometry.of(layer, info)
        w_depth = int(layer.weight.size)
        L = layer.lanes
        if weights == "spram":
            _, _, lanes, words, _ = spram_layer_geometry(layer)
            wspec = MemorySpec("wmem", words, 16 * lanes, False, "weights", spram=True)
        else:
            wspec = MemorySpec("wmem", w_depth // L, L * layer.w_bits, True, "weights",
                               block=weights == "block")
        specs = [
            wspec,
            MemorySpec("bmem", geo.c_out // L, L * layer.b_bits, True, "biases"),
            MemorySpec("pmem", geo.n_out // L, L * info.width, False, "potentials"),
        ]
        if ram_width is not None:
            specs = [c for s in specs for c in
                     (split_columns(s, ram_width) if not s.spram else [s])]
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
        the fire unit one every ``interval`` cycles (L lanes: N_out / L words), the fire unit's
        latency, the output queue (F > 1: and the serializer register after it); with F fire
        lanes the neurons go through in N_out / F groups."""
        lat, interval = fire_timing(discharge=self._discharge, levels=self._layer.levels,
                                    readout=self._layer.readout, pipelined=True)
        F = self._layer.fire
        return 7 + (self._geo.n_out // F - 1) * interval + lat + (F > 1)

    def elaborate(self, platform):
        m = Module()
        layer, geo, T = self._layer, self._geo, self._T
        pw = self._pw
        n_out, c_out = geo.n_out, geo.c_out
        zw = value_width(self._zmax_in)

        # -- memories (L lanes: words of L weights, biases, potentials) ---------------------
        L = layer.lanes
        wgeo = geo.words(L)                 # the generator walks word addresses
        n_w = wgeo.n_out
        weight = [int(v) for v in layer.weight.reshape(-1)]
        w_depth = len(weight) // L

        def shape_of(width):
            return signed(width) if L == 1 else unsigned(L * width)

        def init_of(values, width):
            return [int(v) for v in values] if L == 1 else pack_lanes(values, width, L)

        if self._weights == "spram":
            s_width, s_depth, _ = spram_elements(layer)
            m.submodules.wmem = wmem = SpramBank(width=s_width, depth=s_depth,
                                                 primitive=self._primitive)
        else:
            m.submodules.wmem = wmem = CountedMemory(shape=shape_of(layer.w_bits),
                                                     depth=w_depth,
                                                     init=init_of(weight, layer.w_bits),
                                                     writable=False, max_width=self._ram_width,
                                                     block=self._weights == "block")
        m.submodules.bmem = bmem = CountedMemory(shape=shape_of(layer.b_bits),
                                                 depth=c_out // L,
                                                 init=init_of(layer.bias, layer.b_bits),
                                                 writable=False, max_width=self._ram_width)
        bitserial = getattr(layer, "coding", "rate") == "bitserial"
        # A bit-serial core starts from 0 and adds v0 once with the bias (docs/bitserial.md).
        p_init = 0 if bitserial else layer.v0
        # One word of P (as many lanes as neurons): a register the adders add to directly.
        live = n_w == 1
        m.submodules.pmem = pmem = CountedMemory(shape=shape_of(pw), depth=n_w,
                                                 init=init_of([p_init] * n_out, pw),
                                                 max_width=self._ram_width, live=live)
        for mem in (wmem, bmem, pmem):
            m.d.comb += mem.clear.eq(self.clear)

        integrating = Signal(init=1)        # taking tokens of this timestep (a register)
        draining = Signal()                 # an EOT was taken; the integrate stages drain

        # -- S, D: skid buffer and decode ----------------------------------------------------
        m.submodules.skid = skid = SkidBuffer(self.in_layout)
        wiring.connect(m, wiring.flipped(self.i), skid.i)
        nxt, d_valid = skid.next, skid.valid
        d_kind, d_z = skid.payload.kind, skid.payload.value
        ny_max, nx_max = max(1, geo.max_ny), max(1, geo.max_nx)
        if geo.kind == "dense":
            d_wbase = Signal(range(w_depth))
            cw = c_out // L                 # weight words per input row
            with m.If(skid.load):
                # index·cw as shifts and adds: a constant multiplication that yosys would
                # otherwise map to a DSP, whose delay would then sit behind the skid mux.
                m.d.sync += d_wbase.eq(sum(nxt.index << k for k in range(cw.bit_length())
                                           if (cw >> k) & 1))
            d_jbase = Const(0, range(n_w))
            d_ny = Const(1, range(ny_max + 1))
            d_nx = Const(1, range(nx_max + 1))
        else:
            entry = fanout_entry_layout(geo, w_depth)
            m.submodules.fanout = table = Memory(
                shape=entry, depth=geo.n_in,
                init=[{"w_base": wgeo.w_base[i], "j_base": wgeo.j_base[i], "ny": wgeo.ny[i],
                       "nx": wgeo.nx[i]} for i in range(geo.n_in)])
            tp = table.read_port()
            m.d.comb += [tp.addr.eq(nxt.index), tp.en.eq(skid.load)]
            d_wbase, d_jbase, d_ny, d_nx = tp.data.w_base, tp.data.j_base, tp.data.ny, tp.data.nx

        # -- G: address generator; R K M N: weight and product ---------------------------------
        m.submodules.gen = gen = AddressGenerator(geo=wgeo, w_depth=w_depth, z_width=zw,
                                                  stall_free=self._synapse == "mul")
        m.submodules.syn = syn = SynapsePipe(n=n_w, z_width=zw, w_bits=layer.w_bits,
                                             synapse=self._synapse, lanes=L)
        # An event without targets (stride, borders) leaves D at once, even while G is busy, so
        # it costs no generator cycle; everything else waits for G to be free.
        d_empty = (d_kind == EventKind.EVENT) & ((d_ny == 0) | (d_nx == 0))
        d_take = skid.take
        m.d.comb += [
            d_take.eq(integrating & d_valid & (d_empty | gen.takes)),
            gen.start.eq(d_take & (d_kind != EventKind.EOT) & (d_ny != 0) & (d_nx != 0)),
            gen.w_base.eq(d_wbase), gen.j_base.eq(d_jbase), gen.ny.eq(d_ny), gen.nx.eq(d_nx),
            gen.z.eq(d_z),
            gen.ready.eq(syn.ready),
            wmem.rd_addr.eq(gen.w), wmem.rd_en.eq(gen.adv),
            syn.adv.eq(gen.adv), syn.j.eq(gen.j), syn.z.eq(gen.z_out),
            syn.w_data.eq(wmem.rd_data),
        ]
        with m.If(d_take & (d_kind == EventKind.EOT)):
            m.d.sync += [draining.eq(1), integrating.eq(0)]

        # -- X, A, W1: P + z·w with forwarding (hw.stages.Accumulate) -------------------------
        m.submodules.acc = acc = Accumulate(n=n_w, potential_width=pw,
                                            operand_shape=product_shape(zw, layer.w_bits),
                                            narrow=self._narrow, registered=False, lanes=L,
                                            live=live)
        m.d.comb += [acc.valid.eq(syn.valid), acc.j.eq(syn.n_j), acc.operand.eq(syn.product),
                     acc.p_data.eq(pmem.rd_data), acc.clear.eq(self.clear)]
        if live:
            m.d.comb += acc.p_live.eq(pmem.live)

        # -- sweep: read P[j], B[co] → W1 → fire unit → write-back → Q (hw.stages.Sweep) ----
        if bitserial:
            fires = [BitSerialUnit(threshold=layer.threshold, timesteps=T, potential_width=pw,
                                   bias_width=layer.b_bits, index_width=index_width(n_w),
                                   v0=layer.v0, readout=layer.readout)]
        else:
            fires = [FireUnit(
                levels=layer.levels, threshold=layer.threshold, potential_width=pw,
                bias_width=layer.b_bits, index_width=sweep_index_width(n_w, L // layer.fire),
                v0=layer.v0,
                discharge=self._discharge, readout=layer.readout, saturate=self._narrow,
                pipelined=True, reset=layer.reset, leak=layer.leak, stalls=False)
                for _ in range(layer.fire)]
        for fire in fires:
            m.d.comb += fire.clear.eq(self.clear)
        m.submodules.sweep = sweep = Sweep(units=fires, n=n_w, timesteps=T,
                                           out_layout=self.out_layout, readout=layer.readout,
                                           pixels=geo.hw_out, bitserial=bitserial,
                                           early_exit=self._early_exit, lanes=L, live=live)
        ee = self._early_exit
        exit_now = self.exit if ee else Const(0, 1)
        exit_end = sweep.exit_end if ee else Const(0, 1)
        exiting = sweep.exiting if ee else Const(0, 1)
        if ee:
            m.d.comb += [sweep.exit.eq(self.exit), self.exiting.eq(sweep.exiting)]
        drain_done = Signal()
        m.d.comb += [
            drain_done.eq(draining & ~gen.busy & ~syn.busy & ~acc.busy),
            sweep.start.eq(drain_done),
            sweep.p_data.eq(pmem.rd_data), sweep.b_data.eq(bmem.rd_data),
            bmem.rd_addr.eq(sweep.b_addr), bmem.rd_en.eq(sweep.b_en & ~exiting),
        ]
        if live:
            m.d.comb += sweep.p_live.eq(pmem.live)
        wiring.connect(m, wiring.flipped(self.o), sweep.o)
        with m.If(drain_done):
            m.d.sync += draining.eq(0)
        with m.If(sweep.done | exit_end):
            m.d.sync += integrating.eq(1)
        with m.If(exit_now):               # the exit sweep: no token until it has finished
            m.d.sync += integrating.eq(0)

        # P's ports: the integrate stages outside the sweep, the sweep during it. The read
        # address is a register written one cycle ahead (M's target when M hands over to N, the
        # sweep's next neuron), so no multiplexer sits in front of the memory; the two read
        # enables are never high together (the integrate stages are empty during the sweep).
        p_raddr = Signal(range(n_w))
        with m.If(syn.issue):
            m.d.sync += p_raddr.eq(syn.m_j)
        with m.Elif(sweep.issue):
            m.d.sync += p_raddr.eq(sweep.j + 1)
        with m.Elif(drain_done | sweep.restart | exit_now):
            m.d.sync += p_raddr.eq(0)
        m.d.comb += [pmem.rd_addr.eq(p_raddr), pmem.rd_en.eq(sweep.issue | syn.valid)]
        # The write port's source: the sweep while it runs (``sweeping``, a register: the
        # integrate stages are empty then and write nothing), else the accumulator; a
        # register rather than the write-back strobe selects the (wide) data.
        with m.If(sweep.sweeping):
            m.d.comb += [pmem.wr_addr.eq(sweep.wb_j), pmem.wr_data.eq(sweep.wb_p),
                         pmem.wr_en.eq(sweep.wb)]
        with m.Else():
            m.d.comb += [pmem.wr_addr.eq(acc.wr_j), pmem.wr_data.eq(acc.wr_data),
                         pmem.wr_en.eq(acc.wr_en)]

        # -- counters -------------------------------------------------------------------------
        in_hs = skid.accepted
        out_hs = self.o.valid & self.o.ready
        # ``shifts`` only in a bit-serial core (docs/bitserial.md §5); 0 in the others.
        ctr = Counters(m, self.clear, ("ev_in", "ev_out", "syn_updates", "syn_acc", "cycles")
                       + (("shifts",) if bitserial else ()), registered=False)
        ctr.count("ev_in", in_hs & (self.i.payload.kind == EventKind.EVENT))
        ctr.count("ev_out", out_hs & (self.o.payload.kind == EventKind.EVENT))
        ctr.count("syn_updates", gen.adv, L)                   # L synapses per word
        ctr.count("syn_acc", gen.adv, gen.z_out if L == 1 else times_const(gen.z_out, L))
        # The first token of an inference is the first accepted after the T-th EOT of the
        # previous one; the last is the T-th EOT sent.
        in_eots = Signal(range(T))
        in_eot = in_hs & (self.i.payload.kind == EventKind.EOT)
        with m.If(in_eot):
            m.d.sync += in_eots.eq(Mux(in_eots == T - 1, 0, in_eots + 1))
        with m.If(exit_now):               # an exited inference ends with its exit sweep
            m.d.sync += in_eots.eq(0)
        busy, in_flight, in_first = inference_bracket(m, in_hs,
                                                      (in_eot & (in_eots == T - 1)) | exit_now,
                                                      sweep.out_last | exit_end)
        ctr.count("cycles", busy)
        if bitserial:
            ctr.count("shifts", sweep.doubled)      # with the write-back, as p_wr counts it

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

        # Internal signals for benchmarks and debugging in the Amaranth simulator.
        self.probe = {"g_adv": gen.adv, "g_busy": gen.busy, "integrating": integrating,
                      "d_valid": d_valid}

        c = ctr.sig

        def per_lane(v):            # SPEC counters per synapse and neuron: L per word access
            return v if L == 1 else times_const(v, L)[:COUNTER_WIDTH]

        fire_sat = fires[0].saturations if len(fires) == 1 else (
            sum((f.saturations for f in fires[1:]), fires[0].saturations) if self._narrow
            else 0)
        m.d.comb += [
            self.overflow.eq(acc.overflow | Cat(*(f.overflow for f in fires)).any()),
            self.counters.ev_in.eq(c["ev_in"]),
            self.counters.ev_out.eq(c["ev_out"]),
            self.counters.w_rd.eq(per_lane(wmem.reads)),
            self.counters.p_rd.eq(per_lane(pmem.reads)),
            self.counters.p_wr.eq(per_lane(pmem.writes)),
            self.counters.b_rd.eq(per_lane(bmem.reads)),
            self.counters.w_rd_words.eq(wmem.reads),
            self.counters.p_rd_words.eq(pmem.reads),
            self.counters.p_wr_words.eq(pmem.writes),
            self.counters.syn_updates.eq(c["syn_updates"]),
            self.counters.syn_acc.eq(c["syn_acc"]),
            self.counters.cycles.eq(c["cycles"]),
            self.counters.saturations.eq(acc.saturations + fire_sat),
            self.counters.shifts.eq(c["shifts"] if bitserial else 0),
        ]
        return m
