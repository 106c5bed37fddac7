"""Network top: cores of an IR DAG joined by FIFOs, input streamer, readout and counter access.

``NetworkTop(net)`` builds the accelerator of any IR network (``docs/hw-interfaces.md``)::

    pixels ─► InputStreamer ─► Queue ─► LayerCore ─► Queue ─► … ─► LayerCore (readout) ─► result

One core per IR layer, in IR order, the one its kind names (:mod:`hw.cores`):
:class:`~hw.layer.LayerCore` for dense and conv2d layers, :class:`~hw.join.BarrierCore` for
barrier joins, :class:`~hw.join.SewJoin` for SEW joins, :class:`~hw.pool.PoolCore` for pooling.
The cores are wired by name: every consumer edge (source layer → input port k of a consumer) gets its
own :class:`Queue`, and a source with several consumers feeds their queues through a
:class:`~hw.join.Fork`. A residual block therefore becomes::

                 ┌► Queue ► conv a ► Queue ► conv b ► Queue ┐
    S ► Fork(2) ─┤                                          ├► BarrierCore | SewJoin ► Queue ► …
                 └► Queue ─────────(short conv ► Queue)─────┘

FIFO depths (``fifo_depth=None``): :data:`DEFAULT_FIFO_DEPTH` on ordinary edges; an edge into a
join gets room for one timestep of its source's events (``events_bound + 1``, at least the
default, at most :data:`MAX_JOIN_FIFO_DEPTH`), so that the short path can run a timestep ahead
while the long path computes. Depth is a matter of overlap only: the joins consume whichever
input has a token, which makes every depth >= 1 deadlock-free (the argument is in
:mod:`hw.join`); ``fifo_depth=<int>`` sets every queue to that depth (tests use 1 and 2).

Weights in SPRAM (``weights="spram"`` or ``{name: "spram"}``, iCE40 UltraPlus): those layer
cores hold their weights in :class:`hw.memory.SpramBank` and the top gets one ``wload``
stream, ``{layer, addr, data}``: the IR index of the layer (its position in ``net.layers``),
the word address in that layer's bank and the packed word (:func:`weight_load_words` gives
the whole sequence, ``top.wload_map`` each layer's index and word count). The host loads the
weights before the first inference: ``wload.ready`` is low while the top is busy, and no pixel
is accepted while a load word is still on its way to its core, so an inference never starts
during a load (docs/hw-interfaces.md).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH
from golden.errors import MlsnnError
from golden.ir import INPUT, Conv2d, Dense, Network, kind_of

from .cores import check_network, core_class, layer_core
from .credit import CreditQueue
from .join import Fork
from .layer import (WEIGHT_STORES, LayerCore, spram_layer_geometry, spram_load_words,
                    wload_layout)
from .memory import MemorySpec
from .layout import (COUNTER_STRIDE, COUNTERS, CTR_LATENCY, EventKind, EventLayout, ResultLayout,
                     index_width, value_width)
from .neuron import _or_all, check_choice, check_int

__all__ = ["NetworkTop", "layer_core", "Queue", "InputStreamer", "check_supported", "edges",
           "pack_pixels", "pixel_layout", "check_pixels_per_beat",
           "default_fifo_depth", "DEFAULT_FIFO_DEPTH", "MAX_JOIN_FIFO_DEPTH", "CTR_LATENCY",
           "weight_storage", "weight_load_words", "wload_top_layout", "ExitGate"]

#: Depth of the queue after the readout core (three: one token per cycle).
READOUT_QUEUE_DEPTH = 3
#: Depth of an ordinary inter-core queue when ``fifo_depth=None``.
DEFAULT_FIFO_DEPTH = 16
#: Upper bound of the depth given by default to a queue that feeds a join.
MAX_JOIN_FIFO_DEPTH = 256


def check_supported(net):
    """Raise :class:`MlsnnError` when :class:`NetworkTop` cannot build ``net``.

    Every IR DAG is supported; what remains is what a core cannot build (e.g. a v0 that does not
    fit its potential width: the hardware stores it in the potential memory). Call it before
    constructing a top from user input: a constructor that raises still leaves an unused
    elaboratable behind.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a golden.ir.Network, not {type(net).__name__}")
    check_network(net)
    if net.early_exit is not None:
        for layer in net.layers:
            if not getattr(core_class(kind_of(layer).kind), "EARLY_EXIT", False):
                raise MlsnnError(f"early exit: the core of layer '{layer.name}' "
                                 f"({layer.label}) has no exit sweep (docs/early-exit.md)")


def weight_storage(net, weights="rom"):
    """``{name: "rom" | "block" | "spram"}`` for every dense and conv2d layer of ``net``.

    ``weights``: ``"rom"`` (every layer in ROM, block RAM or logic as yosys chooses),
    ``"block"`` (every ROM in block RAM), ``"spram"`` (every dense and conv2d layer in SPRAM)
    or ``{name: "rom" | "block" | "spram"}`` (the layers not named stay in ROM).

    Raises
    ------
    ValueError
        ``weights`` of another value, a name that is not a dense or conv2d layer of ``net``.
    """
    names = [layer.name for layer in net.layers if isinstance(layer, (Dense, Conv2d))]
    if isinstance(weights, str):
        check_choice("weights", weights, WEIGHT_STORES)
        return {n: weights for n in names}
    if not isinstance(weights, dict):
        raise TypeError(f"weights must be 'rom', 'block', 'spram' or a dict {{layer: 'rom' | "
                        f"'block' | 'spram'}}, not {type(weights).__name__}")
    out = {n: "rom" for n in names}
    for name, w in weights.items():
        if name not in out:
            raise ValueError(f"weights: {name!r} is not a dense or conv2d layer of the network "
                             f"(those are {', '.join(names)})")
        out[name] = check_choice(f"weights[{name!r}]", w, WEIGHT_STORES)
    return out



def wload_top_layout(net, weights="spram"):
    """The payload of the top's ``wload`` stream (None when no layer is in SPRAM):
    ``{layer: IR index, addr: word address, data: packed word}``, each field as wide as the
    widest SPRAM layer needs."""
    store = weight_storage(net, weights)
    spram = [net.layer(n) for n, w in store.items() if w == "spram"]
    if not spram:
        return None
    lays = [wload_layout(layer) for layer in spram]
    words = max(Shape.cast(lay["addr"].shape).width for lay in lays)
    dw = max(Shape.cast(lay["data"].shape).width for lay in lays)
    return data.StructLayout({"layer": range(len(net.layers)), "addr": unsigned(words),
                              "data": unsigned(dw)})


def weight_load_words(net, weights="spram"):
    """The load sequence of a top built with ``weights``: ``[(layer index, addr, data)]``,
    layers in IR order, words in address order (:func:`hw.layer.spram_load_words`: the
    layer's weights, or its L-lane weight words, packed into SPRAM words)."""
    store = weight_storage(net, weights)
    out = []
    for k, layer in enumerate(net.layers):
        if store.get(layer.name) == "spram":
            out += [(k, a, w) for a, w in enumerate(spram_load_words(layer))]
    return out


def edges(net):
    """The consumer edges of ``net`` in the order the top builds their queues:
    ``[(source, consumer_index, port)]`` with ``source`` a layer name or ``"input"``,
    ``consumer_index`` the consumer's index in ``net.layers`` and ``port`` its input (0 or 1)."""
    return [(src, k, p) for k, layer in enumerate(net.layers)
            for p, src in enumerate(layer.inputs)]


def _events_bound(net, src):
    """Most events ``src`` can send in one timestep (a SEW join passes several streams)."""
    if src == INPUT:
        return net.input.size
    info = net.info(src)
    return info.n_out * (len(info.streams) if net.layer(src).passthrough else 1)


def default_fifo_depth(net, src, consumer):
    """Depth of the queue from ``src`` to layer ``consumer`` when ``fifo_depth=None``."""
    if net.layer(consumer).n_inputs > 1:
        return min(MAX_JOIN_FIFO_DEPTH, max(DEFAULT_FIFO_DEPTH, _events_bound(net, src) + 1))
    return DEFAULT_FIFO_DEPTH


def _greater_parts(a, b):
    """``a > b`` for two signed values of one width as three half-width comparisons
    ``(hi_gt, hi_eq, lo_gt)``, ``a > b == hi_gt | (hi_eq & lo_gt)``: two short carry chains
    side by side instead of one long one, to be registered before they are combined."""
    w = len(a)
    if w < 8:
        return a > b, Const(0, 1), Const(0, 1)
    h = w // 2
    a_hi, b_hi = a[h:].as_signed(), b[h:].as_signed()
    return a_hi > b_hi, a_hi == b_hi, a[:h] > b[:h]


class Queue(wiring.Component):
    """A stream FIFO (:class:`_Fifo`) behind stream ports.

    Timing: latency 2 cycles (write to ``o.valid``); one token per cycle; ``i.ready`` and
    ``o.valid`` are registers, so a queue cuts every combinational valid/ready path (those of
    ``lib.fifo.SyncFIFOBuffered``, whose cycle behaviour it has, are a comparator after one).

    Parameters
    ----------
    shape : shape-like
        Payload shape.
    depth : int
        Capacity (>= 1; a queue of depth 1 or 2 passes one token every other cycle, from
        depth 3 on one per cycle).
    stall_port : bool
        Add a ``stall`` input: while it is high the queue offers nothing (``o.valid`` low). A
        test hook for random backpressure inside a network; off for synthesis.
    """

    def __init__(self, *, shape, depth, stall_port=False):
        self._shape = shape
        self._depth = check_int("depth", depth, minimum=1)
        self._stall_port = bool(stall_port)
        members = {
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        }
        if self._stall_port:
            members["stall"] = In(1)
        super().__init__(members)

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = q = _Fifo(width=Shape.cast(self._shape).width, depth=self._depth)
        m.d.comb += [
            q.w_data.eq(self.i.payload),
            q.w_en.eq(self.i.valid),
            self.i.ready.eq(q.w_rdy),
            self.o.payload.eq(q.r_data),
        ]
        if self._stall_port:
            m.d.comb += [self.o.valid.eq(q.r_rdy & ~self.stall),
                         q.r_en.eq(self.o.ready & ~self.stall)]
        else:
            m.d.comb += [self.o.valid.eq(q.r_rdy), q.r_en.eq(self.o.ready)]
        return m


class _Fifo(wiring.Component):
    """A FIFO of ``depth`` words: a memory of ``depth − 1`` words with a synchronous read
    port (``storage``) and the output register ``r_data``; ``w_rdy`` and ``r_rdy`` are
    registers. Cycle for cycle the behaviour of ``lib.fifo.SyncFIFOBuffered(width, depth)``
    (so :func:`flows.fit.top_memories` and the cycle model hold), with ``w_rdy`` computed one
    cycle ahead from the next fill level instead of compared after the level register."""

    def __init__(self, *, width, depth):
        self._width, self._depth = width, depth
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1, init=1),
            "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        do_write = self.w_rdy & self.w_en
        do_read = self.r_rdy & self.r_en
        if self._depth == 1:            # one register, one token every other cycle
            with m.If(do_write):
                m.d.sync += [self.r_data.eq(self.w_data), self.r_rdy.eq(1), self.w_rdy.eq(0)]
            with m.Elif(do_read):
                m.d.sync += [self.r_rdy.eq(0), self.w_rdy.eq(1)]
            return m
        inner = self._depth - 1
        level = Signal(range(inner + 1))            # words in the memory
        m.submodules.storage = storage = Memory(shape=self._width, depth=inner, init=[])
        wp = storage.write_port()
        rp = storage.read_port(domain="sync")
        produce, consume = Signal(range(inner)), Signal(range(inner))
        pull = Signal()                             # the memory's head moves to r_data
        m.d.comb += [
            pull.eq((level != 0) & (~self.r_rdy | self.r_en)),
            wp.addr.eq(produce), wp.data.eq(self.w_data), wp.en.eq(do_write),
            rp.addr.eq(consume), rp.en.eq(pull), self.r_data.eq(rp.data),
        ]

        def step(ptr):
            return Mux(ptr == inner - 1, 0, ptr + 1)
        with m.If(do_write):
            m.d.sync += produce.eq(step(produce))
        with m.If(pull):
            m.d.sync += [consume.eq(step(consume)), self.r_rdy.eq(1)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        with m.If(do_write & ~pull):
            m.d.sync += [level.eq(level + 1), self.w_rdy.eq(level != inner - 1)]
        with m.Elif(pull & ~do_write):
            m.d.sync += [level.eq(level - 1), self.w_rdy.eq(1)]
        return m


def check_pixels_per_beat(pixels_per_beat, n_in):
    """``pixels_per_beat`` as an int in ``1 … n_in`` (ValueError otherwise)."""
    p = check_int("pixels_per_beat", pixels_per_beat, minimum=1)
    if p > n_in:
        raise ValueError(f"pixels_per_beat ({p}) must not exceed the input size ({n_in})")
    return p


def pixel_layout(in_bits, pixels_per_beat=1):
    """The payload of the ``pixels`` stream: a pixel, or an array of ``pixels_per_beat``."""
    if pixels_per_beat == 1:
        return unsigned(in_bits)
    return data.ArrayLayout(unsigned(in_bits), pixels_per_beat)


def pack_pixels(pixels, in_bits, pixels_per_beat=1):
    """Flat pixels → the ``pixels`` beats as ints (pixel k of a beat at bit ``k·in_bits``; the
    last beat padded with zeros)."""
    vals = [int(v) for v in pixels]
    P = pixels_per_beat
    return [sum(v << (k * in_bits) for k, v in enumerate(vals[b:b + P]))
            for b in range(0, len(vals), P)]


def _none_one(bits):
    """``(none, one)``: no bit of ``bits`` set, at most one set, as a balanced tree of
    (any, many) pairs (log depth, no carry chain)."""
    pairs = [(bits[k], Const(0, 1)) for k in range(len(bits))]
    while len(pairs) > 1:
        nxt = []
        for k in range(0, len(pairs) - 1, 2):
            (a_any, a_many), (b_any, b_many) = pairs[k], pairs[k + 1]
            nxt.append((a_any | b_any, a_many | b_many | (a_any & b_any)))
        if len(pairs) % 2:
            nxt.append(pairs[-1])
        pairs = nxt
    return ~pairs[0][0], ~pairs[0][1]


def _onehot_index(onehot):
    """The index of the set bit of a one-hot value (0 when none is set)."""
    idx = Const(0, 1)
    for k in range(1, len(onehot)):
        idx = idx | Mux(onehot[k], k, 0)
    return idx


def _onehot_select(onehot, values):
    """The value whose bit of ``onehot`` is set (0 when none is)."""
    out = Const(0, 1)
    for k, v in enumerate(values):
        out = out | Mux(onehot[k], v, 0)
    return out


class InputStreamer(wiring.Component):
    """Turns an image into the network's input events (SPEC §3, direct encoding), event-driven.

    Accepts the image as ``ceil(n_in / P)`` beats of ``P = pixels_per_beat`` pixels (flat CHW
    order; the last beat's padding pixels are ignored) while ``enable`` is high, and presents
    it T times: for each timestep ``EVENT(i, x_i)`` for every ``x_i > 0`` in ascending i, then
    EOT. Zero pixels cost nothing downstream and nothing after the load.

    Timestep 0 is emitted while the image loads: a beat's non-zero pixels leave one per cycle,
    lowest index first (a one-hot "lowest set bit" of the beat's non-zero mask selects the
    pixel), and the next beat enters B in the cycle of the last one's last event; a beat without
    a non-zero pixel takes one cycle. A one-beat skid register in front of B takes the next beat
    while B is busy, so ``pixels.ready`` does not depend on B (it is a register gated by
    ``enable``); B's cycles are the same as without it. With T > 1 every event is also written, compacted, into an
    event buffer (block RAM, ``n_in`` entries of index and value), which timesteps 1 … T-1 replay:
    one event per cycle, then the EOT. Every slot (event or EOT) reserves a credit of a
    :class:`~hw.credit.CreditQueue` when it issues, so nothing waits for ``o.ready`` behind the
    block RAM, and ``o`` comes from registers.

    Timing: an image with e_b non-zero pixels in beat b and E in total (no stall) issues its
    last slot ``Σ_b max(1, e_b) + 1 + (T - 1)·(E + 1)`` cycles after its first beat was
    accepted; latency from a slot's issue to ``o.valid``: 3 cycles (:attr:`LATENCY`). An empty
    image with ``P = n_in`` costs T slots (its EOTs).

    Members
    -------
    pixels : In(stream.Signature(unsigned(in_bits) or ArrayLayout(unsigned(in_bits), P)))
        A plain pixel when ``P == 1``, else an array of P pixels (pixel k of the beat at bits
        ``k·in_bits``; :func:`pack_pixels` builds the beats).
    o : Out(stream.Signature(EventLayout(index_width(n_in), in_bits)))
    enable : In(1)
        Beats are accepted only while high.
    busy : Out(1)
        Loading (after the first beat) or streaming (until the last EOT has been sent).
    done : Out(1)
        Pulses with the handshake of the last EOT of the inference.
    """

    #: Credits of the output queue: a slot holds its credit for five cycles from its issue to
    #: its return (three to the handshake, two for the return), so five keep one slot per cycle.
    CREDITS = 5
    #: Cycles from a slot's issue to ``o.valid`` (issue → R register → queue store → O).
    LATENCY = 3

    def __init__(self, *, n_in, in_bits, timesteps, pixels_per_beat=1):
        self._n = check_int("n_in", n_in, minimum=1)
        self._bits = check_int("in_bits", in_bits, minimum=1)
        self._T = check_int("timesteps", timesteps, minimum=1)
        self._P = check_pixels_per_beat(pixels_per_beat, n_in)
        self.out_layout = EventLayout(index_width(n_in), in_bits)
        super().__init__({
            "pixels": In(stream.Signature(pixel_layout(in_bits, self._P))),
            "o": Out(stream.Signature(self.out_layout)),
            "enable": In(1),
            "busy": Out(1),
            "done": Out(1),
        })

    @property
    def pixels_per_beat(self):
        return self._P

    @staticmethod
    def memories(n_in, in_bits, timesteps):
        """The streamer's memories as :class:`hw.memory.MemorySpec`: the event buffer
        (``n_in`` entries of index and value) when T > 1, none for T = 1."""
        if timesteps == 1:
            return []
        return [MemorySpec("buf", n_in, index_width(n_in) + in_bits, False, "input events")]

    def elaborate(self, platform):
        m = Module()
        n, T, P, bits = self._n, self._T, self._P, self._bits
        nb = -(-n // P)                     # beats per image
        tok_layout = data.StructLayout({"tok": self.out_layout, "last": 1})
        m.submodules.q = q = CreditQueue(shape=tok_layout, depth=8, credits=self.CREDITS)
        iw = index_width(n)

        # -- the beat register B: P pixels, their non-zero mask, the index of pixel 0 --------
        b_valid, b_last = Signal(name="b_valid"), Signal(name="b_last")
        b_pix = Signal(pixel_layout(bits, P))
        pix = [b_pix] if P == 1 else [b_pix[k] for k in range(P)]
        b_mask = Signal(P)
        b_none = Signal()           # b_mask == 0, registered
        b_one = Signal()            # at most one bit of b_mask set, registered
        b_base = Signal(range(max(1, (nb - 1) * P) + 1))
        in_base = Signal.like(b_base)   # the index of pixel 0 of the next beat
        bi = Signal(range(nb))      # beats accepted of this image (mod nb)
        streaming = Signal()        # from the last beat accepted to the last EOT sent
        eot0 = Signal()             # timestep 0's EOT is due
        scan = Signal()             # replaying timesteps 1 … T-1
        room = q.room

        lowest = Signal(P)
        m.d.comb += lowest.eq(b_mask & ~(b_mask - 1)[:P])
        ev_index = Signal(iw)
        ev_value = Signal(bits)
        m.d.comb += [
            ev_index.eq(b_base + _onehot_index(lowest)),
            ev_value.eq(_onehot_select(lowest, pix)),
        ]
        # -- the skid register A in front of B: ``pixels.ready`` is ``~a_valid`` (a register)
        # gated by ``enable`` and ``streaming``, so B's state does not reach the handshake. A
        # beat taken while B is busy waits in A and moves into B in the cycle B would have
        # taken it from the input; else it goes straight into B. B's cycles are those without A.
        a_valid, a_last = Signal(name="a_valid"), Signal(name="a_last")
        a_pix = Signal(pixel_layout(bits, P))
        a_mask = Signal(P)
        a_none, a_one = Signal(name="a_none"), Signal(name="a_one")
        a_base = Signal.like(b_base)
        ev_issue = Signal()
        consume = Signal()
        b_free = Signal()                   # B is empty or its beat leaves this cycle
        m.d.comb += [
            ev_issue.eq(b_valid & ~b_none & room),
            consume.eq(b_valid & (b_none | (b_one & room))),
            b_free.eq(~b_valid | b_none | (b_one & room)),
            self.pixels.ready.eq(self.enable & ~streaming & ~a_valid),
            self.busy.eq(streaming | b_valid | a_valid | (bi != 0)),
        ]
        accept = self.pixels.valid & self.pixels.ready
        src_valid = Signal()                # a beat for B: A's, else the input's
        m.d.comb += src_valid.eq(a_valid | accept)
        in_pix = ([self.pixels.payload] if P == 1 else
                  [self.pixels.payload[k] for k in range(P)])
        mask_in = Signal(P)
        last_in = Signal()
        tail = n - (nb - 1) * P             # valid pixels of the last beat
        m.d.comb += [
            last_in.eq(bi == nb - 1),
            mask_in.eq(Cat(p != 0 for p in in_pix) &
                       Mux(last_in, (1 << tail) - 1, (1 << P) - 1)),
        ]
        none_in, one_in = _none_one(mask_in)
        left = Signal(P)                    # the mask after this cycle's event
        m.d.comb += left.eq(b_mask & ~lowest)
        left_none, left_one = _none_one(left)

        with m.If(accept):
            with m.If(last_in):
                m.d.sync += [bi.eq(0), in_base.eq(0), streaming.eq(1)]
            with m.Else():
                m.d.sync += [bi.eq(bi + 1), in_base.eq(in_base + P)]
        # The valid bits as next-state functions (no enable logic in front of them); the data
        # registers load without looking at any valid: A whenever it is empty, B whenever it is
        # free (what they take without a beat is never used), so the handshake reaches only
        # the two valid bits and the counters above.
        m.d.sync += [
            a_valid.eq(src_valid & ~b_free),
            b_valid.eq(src_valid | (b_valid & ~b_none & ~(b_one & room))),
        ]
        with m.If(~a_valid):
            m.d.sync += [a_pix.eq(self.pixels.payload), a_last.eq(last_in), a_base.eq(in_base),
                         a_mask.eq(mask_in), a_none.eq(none_in), a_one.eq(one_in)]
        with m.If(b_free):
            m.d.sync += [
                b_pix.eq(Mux(a_valid, a_pix, self.pixels.payload)),
                b_last.eq(Mux(a_valid, a_last, last_in)),
                b_base.eq(Mux(a_valid, a_base, in_base)),
                b_mask.eq(Mux(a_valid, a_mask, mask_in)),
                b_none.eq(Mux(a_valid, a_none, none_in)),
                b_one.eq(Mux(a_valid, a_one, one_in)),
            ]
        # The mask follows the events alone while the beat stays.
        with m.Elif(ev_issue):
            m.d.sync += [b_mask.eq(left), b_none.eq(left_none), b_one.eq(left_one)]
        with m.If(consume & b_last):
            m.d.sync += eot0.eq(1)

        # -- replay of timesteps 1 … T-1 from the event buffer ---------------------------------
        eot0_issue = Signal()
        scan_issue = Signal()
        m.d.comb += [eot0_issue.eq(eot0 & room), scan_issue.eq(scan & room)]
        with m.If(eot0_issue):
            m.d.sync += eot0.eq(0)
        m.d.comb += q.take.eq(ev_issue | eot0_issue | scan_issue)

        r_valid, r_eot, r_last, r_buf, r_write = (
            Signal(name=f"r_{k}") for k in ("valid", "eot", "last", "buf", "write"))
        r_i = Signal(iw)
        r_v = Signal(bits)
        m.d.sync += [r_valid.eq(q.take), r_buf.eq(scan_issue), r_write.eq(ev_issue & (T > 1))]
        with m.If(ev_issue):
            m.d.sync += [r_eot.eq(0), r_last.eq(0), r_i.eq(ev_index), r_v.eq(ev_value)]
        with m.If(eot0_issue):
            m.d.sync += [r_eot.eq(1), r_last.eq(int(T == 1))]

        rd_i, rd_v = Signal(iw), Signal(bits)
        if T > 1:
            ent = data.StructLayout({"index": iw, "value": bits})
            m.submodules.buf = buf = Memory(shape=ent, depth=n, init=[])
            wp = buf.write_port()
            rp = buf.read_port()
            count = Signal(range(n + 1))    # events of this image in the buffer
            w_addr = Signal(range(n))
            sc = Signal(range(n + 1))       # the next replay slot: event sc, or EOT at count
            sc_eot = Signal()
            t_last = Signal()               # replaying timestep T-1
            m.d.comb += [
                sc_eot.eq(sc == count),
                wp.addr.eq(w_addr), wp.en.eq(r_write),
                wp.data.index.eq(r_i), wp.data.value.eq(r_v),
                rp.addr.eq(sc), rp.en.eq(scan_issue),
                rd_i.eq(rp.data.index), rd_v.eq(rp.data.value),
            ]
            with m.If(ev_issue):
                m.d.sync += [w_addr.eq(count), count.eq(count + 1)]
            with m.If(eot0_issue):
                m.d.sync += [scan.eq(1), t_last.eq(int(T == 2))]
            t = Signal(range(T))
            with m.If(scan_issue):
                m.d.sync += [r_eot.eq(sc_eot), r_last.eq(sc_eot & t_last)]
                with m.If(sc_eot):
                    m.d.sync += sc.eq(0)
                    with m.If(t_last):
                        m.d.sync += [scan.eq(0), t.eq(0), count.eq(0)]
                    with m.Else():
                        m.d.sync += [t.eq(t + 1), t_last.eq(t + 3 == T)]
                with m.Else():
                    m.d.sync += sc.eq(sc + 1)

        m.d.comb += [
            q.w_en.eq(r_valid),
            q.w_data.last.eq(r_last),
            q.w_data.tok.kind.eq(Mux(r_eot, EventKind.EOT, EventKind.EVENT)),
            q.w_data.tok.index.eq(Mux(r_buf, rd_i, r_i)),
            q.w_data.tok.value.eq(Mux(r_buf, rd_v, r_v)),
            self.o.valid.eq(q.o.valid),
            self.o.payload.eq(q.o.payload.tok),
            q.o.ready.eq(self.o.ready),
        ]
        out_last = self.o.valid & self.o.ready & q.o.payload.last
        with m.If(out_last):
            m.d.sync += streaming.eq(0)
        m.d.comb += self.done.eq(out_last)
        return m


class ExitGate(wiring.Component):
    """Timestep-major input for the early exit (docs/early-exit.md): passes the streamer's
    tokens until an EOT has passed, then holds the next timestep back until :attr:`go` (the
    top decided to go on) or :attr:`abort` (it decided to exit: the rest of the image's tokens
    are taken and dropped until :attr:`src_done`, the streamer's last EOT). The EOT of the
    last timestep opens the gate for the next image. Combinational: ``o.valid`` and
    ``i.ready`` are the other side's, gated by registers.

    Members
    -------
    i : In(stream.Signature(shape)), o : Out(stream.Signature(shape))
    go, abort, src_done : In(1)
    waiting, discarding : Out(1)
        Registers: holding after an EOT; dropping an exited image's remaining tokens.
    """

    def __init__(self, *, shape, timesteps):
        self._T = check_int("timesteps", timesteps, minimum=1)
        super().__init__({
            "i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape)),
            "go": In(1), "abort": In(1), "src_done": In(1),
            "waiting": Out(1), "discarding": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        T = self._T
        t = Signal(range(T))
        is_open = ~self.waiting & ~self.discarding
        m.d.comb += [
            self.o.payload.eq(self.i.payload),
            self.o.valid.eq(self.i.valid & is_open),
            self.i.ready.eq((self.o.ready & is_open) | self.discarding),
        ]
        with m.If(self.o.valid & self.o.ready & (self.i.payload.kind == EventKind.EOT)):
            with m.If(t == T - 1):
                m.d.sync += t.eq(0)
            with m.Else():
                m.d.sync += [t.eq(t + 1), self.waiting.eq(1)]
        with m.If(self.go):
            m.d.sync += self.waiting.eq(0)
        with m.If(self.abort):
            m.d.sync += [self.waiting.eq(0), self.discarding.eq(1), t.eq(0)]
        with m.If(self.discarding & self.src_done):
            m.d.sync += self.discarding.eq(0)
        return m


class NetworkTop(wiring.Component):
    """The accelerator of an IR network, residual joins included (ports in
    ``docs/hw-interfaces.md``).

    Timing: cores overlap in a pipeline (a core integrates timestep t+1 while the next one
    sweeps t); an inference takes about Σ updates + T·(N_out + 5) cycles of the slowest core plus
    the pipeline fill. The next image's pixels are accepted once ``busy`` is low. The input
    side is event-driven (:class:`InputStreamer`: one cycle per non-zero pixel, one per beat
    without one); the result side takes one beat per cycle.

    Parameters
    ----------
    net : golden.ir.Network
        Any IR network: dense and conv2d layers, barrier and SEW joins, pooling layers.
    fifo_depth : int or None
        Depth of every inter-core queue; ``None`` sizes them from the IR (see the module
        docstring and :func:`default_fifo_depth`).
    discharge, synapse : str
        Passed to every core (``synapse`` to the layer cores only: joins have no synapses).
    monitor : bool
        Add one ``tap_<k>`` port per layer: ``{valid, payload}`` of every token core k sends
        (``valid`` = handshake), for testbenches. Off for synthesis.
    stall_port : bool
        Add ``stall: In(len(edges(net)))``: while bit e is high, the queue of edge e (order of
        :func:`edges`) offers nothing to its consumer. For testbenches (random backpressure on
        every edge); off for synthesis.
    weights : "rom", "spram" or dict
        Where the dense and conv2d layers keep their weights (:func:`weight_storage`). With
        any layer in SPRAM the top has a ``wload`` port (:func:`wload_top_layout`; load the
        words of :func:`weight_load_words` before the first inference).
    primitive : bool
        SPRAM layers instantiate ``SB_SPRAM256KA`` (synthesis for iCE40); else the model.
    pixels_per_beat : int
        Pixels per beat of the ``pixels`` port, 1 … n_in (:func:`pixel_layout`,
        :func:`pack_pixels`).
    ram_width : int or None
        The dense and conv2d cores build memories with wider words (lanes) as memories of at
        most this many bits side by side (:class:`hw.layer.LayerCore`; synthesis for ECP5
        uses 18, :attr:`flows.fit.Device.ram_width`). Same behaviour and cycles.
    counters : bool
        Build the counter read port (default). ``False``: ``ctr_data`` is always 0, so no
        counter of any core is observable and synthesis removes them all (a deployment
        build: the same behaviour and cycles, fewer LUTs and flip-flops; docs/synthesis.md).

    With ``net.early_exit`` (docs/early-exit.md) the top runs timestep-major (an
    :class:`ExitGate` after the streamer), tracks the two largest readout potentials of every
    timestep, compares their margin with its alpha_t table (constants from the IR) and, on an
    exit, pulses every core's ``exit`` (the exit sweep) and sends the readout's potentials
    as the result.

    Members
    -------
    timesteps_used : Out(range(T + 1))
        Only with ``net.early_exit``: the timesteps the last inference used (valid when
        ``busy`` is low after it).
    alpha_load : In(stream.Signature({index: range(T − 1), value: unsigned(alpha_width)}))
        Only with ``net.early_exit`` and T > 1: writes alpha_{index+1} (the registers start
        from the IR's alpha, saturated to ``alpha_width`` bits: the largest value never
        exits); taken while ``busy`` is low.
    wload : In(stream.Signature(wload_top_layout(net, weights)))
        Only with a layer in SPRAM. Accepted while ``busy`` is (and was, one cycle earlier)
        low, one word every other cycle; a word of a layer without SPRAM is dropped. ``wload_map``: ``{name: (index, words)}``.

    Raises
    ------
    TypeError, ValueError
        On invalid parameters.
    MlsnnError
        For a layer whose v0 does not fit its potential width.
    """

    def __init__(self, net, *, fifo_depth=None, discharge="parallel", synapse="mul",
                 monitor=False, stall_port=False, weights="rom", primitive=False,
                 pixels_per_beat=1, ram_width=None, counters=True):
        check_supported(net)
        self.counters = bool(counters)
        if ram_width is not None:
            check_int("ram_width", ram_width, minimum=1)
        self._ram_width = ram_width
        self.pixels_per_beat = check_pixels_per_beat(pixels_per_beat, net.input.size)
        self._weights = weight_storage(net, weights)
        self._primitive = bool(primitive)
        self.wload_layout = wload_top_layout(net, self._weights)
        self.wload_map = {layer.name: (k, spram_layer_geometry(layer)[3])
                          for k, layer in enumerate(net.layers)
                          if self._weights.get(layer.name) == "spram"}
        self._fifo_depth = None if fifo_depth is None else check_int("fifo_depth", fifo_depth,
                                                                      minimum=1)
        self._discharge = check_choice("discharge", discharge, ("parallel", "serial"))
        self._synapse = check_choice("synapse", synapse, ("mul", "serial"))
        self._net = net
        self._monitor = bool(monitor)
        self._stall_port = bool(stall_port)
        self.edges = edges(net)
        self.fifo_depths = [self._fifo_depth or default_fifo_depth(net, src, net.layers[k].name)
                            for src, k, _ in self.edges]
        ro = net.readout
        ro_info = net.info(ro.name)
        self.n_classes = ro_info.n_out
        self.n_layers = len(net.layers)
        self.result_layout = ResultLayout(index_width(self.n_classes), ro_info.width)
        self.tap_layouts = [self._out_layout(net, layer) for layer in net.layers]
        members = {
            "pixels": In(stream.Signature(pixel_layout(net.input.in_bits,
                                                       self.pixels_per_beat))),
            "result": Out(stream.Signature(self.result_layout)),
            "prediction": Out(index_width(self.n_classes)),
            "busy": Out(1),
            "clear": In(1),
            "ctr_addr": In(index_width(self.n_layers * COUNTER_STRIDE)),
            "ctr_data": Out(COUNTER_WIDTH),
            "overflow": Out(self.n_layers),
        }
        if self._monitor:
            for k, lay in enumerate(self.tap_layouts):
                members[f"tap_{k}"] = Out(wiring.Signature({"valid": Out(1),
                                                            "payload": Out(lay)}))
        if self._stall_port:
            members["stall"] = In(len(self.edges))
        if self.wload_layout is not None:
            members["wload"] = In(stream.Signature(self.wload_layout))
        self.early_exit = net.early_exit
        #: Bits of an alpha register (docs/early-exit.md): the margin's pw + 1; its largest
        #: value is above any margin ("never").
        self.alpha_width = ro_info.width + 1
        if self.early_exit is not None:
            members["timesteps_used"] = Out(range(net.timesteps + 1))
            if net.timesteps > 1:
                members["alpha_load"] = In(stream.Signature(data.StructLayout({
                    "index": range(net.timesteps - 1), "value": unsigned(self.alpha_width)})))
        super().__init__(members)

    @staticmethod
    def _out_layout(net, layer):
        info = net.info(layer.name)
        if layer.readout:
            return EventLayout(index_width(info.n_out), info.width, signed_value=True)
        return EventLayout(index_width(info.n_out), value_width(info.zmax_out))

    @property
    def network(self):
        return self._net

    def _core(self, layer):
        ee = self.early_exit is not None
        if isinstance(layer, (Dense, Conv2d)):
            core = LayerCore.from_network(self._net, layer.name, discharge=self._discharge,
                                          synapse=self._synapse,
                                          weights=self._weights.get(layer.name, "rom"),
                                          primitive=self._primitive, ram_width=self._ram_width,
                                          early_exit=ee)
        else:
            core = layer_core(self._net, layer.name, discharge=self._discharge,
                              synapse=self._synapse, early_exit=ee)
        return core, list(zip(core.inputs, core.in_layouts))

    def elaborate(self, platform):
        m = Module()
        net = self._net
        T = net.timesteps
        m.submodules.streamer = st = InputStreamer(n_in=net.input.size,
                                                   in_bits=net.input.in_bits, timesteps=T,
                                                   pixels_per_beat=self.pixels_per_beat)
        wiring.connect(m, wiring.flipped(self.pixels), st.pixels)
        ee = self.early_exit is not None
        src_in = st.o
        if ee:
            m.submodules.exit_gate = gate = ExitGate(shape=st.out_layout, timesteps=T)
            wiring.connect(m, st.o, gate.i)
            m.d.comb += gate.src_done.eq(st.done)
            src_in = gate.o

        # Cores in IR order; event sources by name.
        sources = {INPUT: src_in}
        cores, in_ports = [], []
        for k, layer in enumerate(net.layers):
            core, ports = self._core(layer)
            m.submodules[f"core_{k}_{layer.name}"] = core
            m.d.comb += core.clear.eq(self.clear)
            if not layer.readout:
                sources[layer.name] = core.o
            cores.append(core)
            in_ports.append(ports)
            if self._monitor:
                tap = getattr(self, f"tap_{k}")
                m.d.comb += [tap.valid.eq(core.o.valid & core.o.ready),
                             tap.payload.eq(core.o.payload)]

        # One queue per consumer edge; a source with several consumers feeds them by a fork.
        outs = {}
        for src in sources:
            n_cons = sum(1 for s, _, _ in self.edges if s == src)
            if n_cons == 1:
                outs[src] = [sources[src]]
            elif n_cons > 1:
                fork = Fork(shape=sources[src].payload.shape(), outputs=n_cons)
                m.submodules[f"fork_{src}"] = fork
                wiring.connect(m, sources[src], fork.i)
                outs[src] = list(fork.o)
        for e, ((src, k, p), depth) in enumerate(zip(self.edges, self.fifo_depths)):
            port, layout = in_ports[k][p]
            name = net.layers[k].name
            q = Queue(shape=layout, depth=depth, stall_port=self._stall_port)
            m.submodules[f"queue_{k}_{name}" if len(in_ports[k]) == 1
                         else f"queue_{k}_{name}_{p}"] = q
            wiring.connect(m, outs[src].pop(0), q.i)
            wiring.connect(m, q.o, port)
            if self._stall_port:
                m.d.comb += q.stall.eq(self.stall[e])

        am_valid = Signal()         # a result beat is in the argmax' first register (AM)
        am2_valid = Signal()        # ... in its second (AM2)
        # Readout tokens → result beats; EOT tokens are consumed here. A small queue after the
        # readout core keeps this logic (whose ready depends on the token's kind) local: its
        # output and its input's ready are registers; three deep for one token per cycle.
        m.submodules.readout_queue = roq = Queue(shape=self.tap_layouts[-1],
                                                 depth=READOUT_QUEUE_DEPTH)
        wiring.connect(m, cores[-1].o, roq.i)
        ro = roq.o
        is_ro = ro.payload.kind == EventKind.READOUT
        n_cls = self.n_classes
        ro_t = Signal(range(T))
        fwd = Const(1, 1)            # the READOUT token goes to ``result``
        if ee:
            ex_active = Signal()     # the readout's exit sweep is sending the result
            fwd = (ro_t == T - 1) | ex_active
        m.d.comb += [
            self.result.valid.eq(ro.valid & is_ro & fwd),
            self.result.payload.index.eq(ro.payload.index),
            self.result.payload.potential.eq(ro.payload.value),
            self.result.payload.last.eq(ro.payload.index == n_cls - 1),
            ro.ready.eq(Mux(is_ro & fwd, self.result.ready, 1)),
        ]
        # Argmax, one beat per cycle, from registers: the beat is registered (AM); in AM it is
        # compared, each comparison in two halves, with the best so far and with the beat one
        # ahead of it (in AM2, whose decision is being made in the same cycle); the results
        # are registered with it (AM2), where it is taken as the best when greater than the
        # best including the beat ahead: the comparison with that beat if it was taken, else
        # the one with the best. Ties keep the lowest index. ``busy`` stays high until the
        # prediction is final.
        best = Signal.like(self.result.payload.potential)
        pred = Signal.like(self.prediction)
        am_index, am2_index = Signal.like(self.prediction), Signal.like(self.prediction)
        am_value = Signal.like(self.result.payload.potential)
        am2_value = Signal.like(self.result.payload.potential)
        am2_first = Signal()        # the beat in AM2 is class 0
        am2_ahead = Signal()        # AM2 held the beat ahead when this one was in AM
        am2_gt_best = [Signal(name=f"am2_gt_best_{k}") for k in range(3)]
        am2_gt_ahead = [Signal(name=f"am2_gt_ahead_{k}") for k in range(3)]
        taken = Signal()            # the last beat to leave AM2 was taken as the best
        beat = Signal()
        m.d.comb += [self.prediction.eq(pred), beat.eq(self.result.valid & self.result.ready)]
        m.d.sync += [am_valid.eq(beat), am2_valid.eq(am_valid)]
        with m.If(beat):
            m.d.sync += [am_index.eq(ro.payload.index), am_value.eq(ro.payload.value)]
        with m.If(am_valid):
            m.d.sync += [am2_index.eq(am_index), am2_value.eq(am_value),
                         am2_first.eq(am_index == 0), am2_ahead.eq(am2_valid)]
            m.d.sync += [s.eq(v) for s, v in zip(am2_gt_best, _greater_parts(am_value, best))]
            m.d.sync += [s.eq(v) for s, v in zip(am2_gt_ahead,
                                                 _greater_parts(am_value, am2_value))]

        def greater(parts):
            hgt, heq, lgt = parts
            return hgt | (heq & lgt)
        take = Signal()
        m.d.comb += take.eq(am2_valid & (am2_first | Mux(am2_ahead & taken,
                                                          greater(am2_gt_ahead),
                                                          greater(am2_gt_best))))
        with m.If(am2_valid):
            m.d.sync += taken.eq(take)
        with m.If(take):
            m.d.sync += [best.eq(am2_value), pred.eq(am2_index)]

        final = Signal()
        ro_eot = ro.valid & ro.ready & (ro.payload.kind == EventKind.EOT)
        with m.If(ro_eot):
            with m.If(ro_t == T - 1):
                m.d.sync += ro_t.eq(0)
                m.d.comb += final.eq(1)
            with m.Else():
                m.d.sync += ro_t.eq(ro_t + 1)
        if ee:
            self._early_exit_logic(m, gate, cores, ro, is_ro, ro_eot, ro_t, ex_active, final)
        draining = Signal()
        # accept = ~(draining | am_valid | am2_valid), kept in a register of its own (computed
        # from their next values), so that the pixel handshake starts from one register.
        accept = Signal(init=1)
        m.d.sync += accept.eq(~((st.done | (draining & ~final)) | beat | am_valid))
        with m.If(st.done):
            m.d.sync += draining.eq(1)
        with m.Elif(final):
            m.d.sync += draining.eq(0)
        busy = Signal()
        m.d.comb += busy.eq(st.busy | draining | am_valid | am2_valid)
        # Weight loads: one register stage W, then to the core the word's layer field names
        # (decoded into one flag per core as W loads). A word is taken only while the top was
        # idle in the previous cycle and W is empty (``wload.ready`` from two registers: one
        # word every other cycle), and no pixel while a word waits in W, so loads and
        # inferences never overlap: every core is idle when busy is low, and a word taken in
        # the cycle after a pixel reaches its core cycles before the pixel's first event.
        w_wait = Const(0, 1)
        if self.wload_layout is not None:
            w_wait = Signal()
            w_word = Signal(self.wload_layout)
            w_done = Signal()
            w_hs = Signal()
            idle = Signal(init=1)       # ~busy in the previous cycle
            m.d.sync += idle.eq(~busy)
            m.d.comb += [self.wload.ready.eq(idle & ~w_wait),
                         w_hs.eq(self.wload.valid & self.wload.ready)]
            with m.If(w_hs):
                m.d.sync += [w_wait.eq(1), w_word.eq(self.wload.payload)]
            with m.Elif(w_done):
                m.d.sync += w_wait.eq(0)
            targets = [k for k, core in enumerate(cores) if hasattr(core, "wload")]
            sel = Signal(len(targets))
            with m.If(w_hs):
                m.d.sync += sel.eq(Cat(self.wload.payload.layer == k for k in targets))
            done = [sel[i] & cores[k].wload.ready for i, k in enumerate(targets)]
            for i, k in enumerate(targets):
                core = cores[k]
                m.d.comb += [
                    core.wload.valid.eq(w_wait & sel[i]),
                    core.wload.payload.addr.eq(w_word.addr),
                    core.wload.payload.data.eq(w_word.data),
                ]
            # a word for a layer without SPRAM (no flag) is dropped
            m.d.comb += w_done.eq(w_wait & ((sel == 0) | Cat(*done).any()))
        m.d.comb += [
            st.enable.eq(accept & ~w_wait),
            self.busy.eq(busy),
            self.overflow.eq(Cat(c.overflow for c in cores)),
        ]

        # Counter access, two register stages (CTR_LATENCY): the address decoded into one
        # select register per counter of every core (one-hot), then ctr_data the OR of the
        # counters ANDed with their selects: a LUT per two counters and a short OR tree, no
        # multiplexer tree after the address and no address bit driving every counter bit.
        if not self.counters:       # ctr_data stays 0: every counter is dead logic
            return m
        terms = []
        for k, core in enumerate(cores):
            for c, name in enumerate(COUNTERS):
                sel = Signal(name=f"ctr_sel_{k}_{c}")
                m.d.sync += sel.eq(self.ctr_addr == k * COUNTER_STRIDE + c)
                terms.append(Mux(sel, getattr(core.counters, name), 0))
        m.d.sync += self.ctr_data.eq(_or_all(terms))
        return m

    def _early_exit_logic(self, m, gate, cores, ro, is_ro, ro_eot, ro_t, ex_active, final):
        """The decision of docs/early-exit.md. Every READOUT token of a timestep is registered
        (E) and folded into the two largest potentials (``best``, ``second``: a tie puts the
        equal value into ``second``); after the timestep's EOT (t < T) their margin is
        registered, compared with alpha_t (registered), and the decision pulses three cycles
        after the EOT (each stage a short path of its own). Exit: every core's ``exit`` pulses, the gate drops the rest
        of the image, and the readout's exit-sweep tokens are the result; the inference ends
        when they have left, the streamer has finished and no core is still sweeping. Else
        the gate lets the next timestep in. Drives ``final`` for an exit too."""
        T = self._net.timesteps
        alpha = self.early_exit.alpha
        pw = len(ro.payload.value)
        e_valid = Signal()
        e_index = Signal.like(ro.payload.index)
        e_value = Signal(signed(pw))
        m.d.sync += e_valid.eq(ro.valid & ro.ready & is_ro)
        with m.If(ro.valid & ro.ready & is_ro):
            m.d.sync += [e_index.eq(ro.payload.index), e_value.eq(ro.payload.value)]
        best, second = Signal(signed(pw)), Signal(signed(pw))
        with m.If(e_valid):
            with m.If(e_index == 0):
                m.d.sync += best.eq(e_value)
            with m.Elif(e_value > best):
                m.d.sync += [best.eq(e_value), second.eq(best)]
            with m.Elif((e_index == 1) | (e_value > second)):
                m.d.sync += second.eq(e_value)
        # Three register stages from the EOT of timestep t < T to the decision, so that the
        # subtraction, the comparisons and the fan-out to every core are paths of their own:
        # D1 (best and second final) registers the margin, D2 the comparison with alpha_t,
        # D3 pulses exit or go.
        d1, d2, decide = Signal(), Signal(), Signal()
        dec_t = Signal(range(T))
        m.d.sync += [d1.eq(ro_eot & (ro_t != T - 1)), d2.eq(d1), decide.eq(d2)]
        with m.If(ro_eot):
            m.d.sync += dec_t.eq(ro_t)
        margin = Signal(unsigned(pw + 1))
        m.d.sync += margin.eq(best - second)
        limit = (1 << self.alpha_width) - 1          # above any margin: never exits
        regs = [Signal(self.alpha_width, init=min(a, limit), name=f"alpha_{k + 1}")
                for k, a in enumerate(alpha)]
        hit = Signal()
        if T > 1:
            ld = self.alpha_load
            m.d.comb += ld.ready.eq(~self.busy)
            for k, r in enumerate(regs):
                with m.If(ld.valid & ld.ready & (ld.payload.index == k)):
                    m.d.sync += r.eq(ld.payload.value)
            hits = Cat(*(margin >= r for r in regs))
            m.d.sync += hit.eq(hits.bit_select(dec_t, 1))
        exit_now = Signal()
        m.d.comb += [exit_now.eq(decide & hit), gate.go.eq(decide & ~hit),
                     gate.abort.eq(exit_now)]
        for core in cores:
            m.d.comb += core.exit.eq(exit_now)
        used = Signal.like(self.timesteps_used, init=T)
        m.d.comb += self.timesteps_used.eq(used)
        tok_done = Signal()             # the readout's exit tokens have all left
        exiting = Cat(*(core.exiting for core in cores)).any()
        with m.If(exit_now):
            m.d.sync += [ex_active.eq(1), ro_t.eq(0), used.eq(dec_t + 1)]
        with m.If(ex_active & ro.valid & ro.ready & is_ro
                  & (ro.payload.index == self.n_classes - 1)):
            m.d.sync += [ex_active.eq(0), tok_done.eq(1)]
        ex_final = tok_done & ~gate.discarding & ~exiting
        with m.If(ex_final):
            m.d.sync += tok_done.eq(0)
            m.d.comb += final.eq(1)
        with m.If(ro_eot & (ro_t == T - 1)):
            m.d.sync += used.eq(T)
