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

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH
from golden.ir import INPUT, Conv2d, Dense, Network

from .cores import check_network, layer_core
from .credit import CreditQueue
from .join import Fork
from .layer import LayerCore, wload_layout
from .memory import pack_words, spram_geometry
from .layout import (COUNTER_STRIDE, COUNTERS, CTR_LATENCY, EventKind, EventLayout, ResultLayout,
                     index_width, value_width)
from .neuron import check_choice, check_int

__all__ = ["NetworkTop", "layer_core", "Queue", "InputStreamer", "check_supported", "edges",
           "default_fifo_depth", "DEFAULT_FIFO_DEPTH", "MAX_JOIN_FIFO_DEPTH", "CTR_LATENCY",
           "weight_storage", "weight_load_words", "wload_top_layout"]

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


def weight_storage(net, weights="rom"):
    """``{name: "rom" | "spram"}`` for every dense and conv2d layer of ``net``.

    ``weights``: ``"rom"`` (every layer in ROM), ``"spram"`` (every dense and conv2d layer in
    SPRAM) or ``{name: "rom" | "spram"}`` (the layers not named stay in ROM).

    Raises
    ------
    ValueError
        ``weights`` of another value, a name that is not a dense or conv2d layer of ``net``.
    """
    names = [layer.name for layer in net.layers if isinstance(layer, (Dense, Conv2d))]
    if isinstance(weights, str):
        check_choice("weights", weights, ("rom", "spram"))
        return {n: weights for n in names}
    if not isinstance(weights, dict):
        raise TypeError(f"weights must be 'rom', 'spram' or a dict {{layer: 'rom' | 'spram'}}, "
                        f"not {type(weights).__name__}")
    out = {n: "rom" for n in names}
    for name, w in weights.items():
        if name not in out:
            raise ValueError(f"weights: {name!r} is not a dense or conv2d layer of the network "
                             f"(those are {', '.join(names)})")
        out[name] = check_choice(f"weights[{name!r}]", w, ("rom", "spram"))
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
    layers in IR order, words in address order (:func:`hw.memory.pack_words` of the layer's
    weights, flattened as its ROM would hold them)."""
    store = weight_storage(net, weights)
    out = []
    for k, layer in enumerate(net.layers):
        if store.get(layer.name) == "spram":
            words = pack_words(layer.weight.reshape(-1), layer.w_bits)
            out += [(k, a, w) for a, w in enumerate(words)]
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
    """A stream FIFO: ``lib.fifo.SyncFIFOBuffered`` behind stream ports.

    Timing: latency 2 cycles (write to ``o.valid``); one token per cycle; ``i.ready`` and
    ``o.valid`` come from registers, so a queue cuts every combinational valid/ready path.

    Parameters
    ----------
    shape : shape-like
        Payload shape.
    depth : int
        Capacity (>= 1; a depth-1 queue passes one token every other cycle).
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
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=Shape.cast(self._shape).width,
                                                      depth=self._depth)
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


class InputStreamer(wiring.Component):
    """Turns an image into the network's input events (SPEC §3, direct encoding).

    Accepts ``n_in`` pixels (flat CHW order) while ``enable`` is high, then presents them T times:
    for each timestep, ``EVENT(i, x_i)`` for every ``x_i > 0`` in ascending i, then EOT.

    Pipeline: a scan counter issues one slot per cycle, pixel i = 0..n-1 then the EOT slot, and
    reads the pixel buffer (block RAM) at the counter itself (a register); the slot's read data
    are registered (with a "keep" flag: EOT or non-zero pixel) and then written into a
    :class:`~hw.credit.CreditQueue`, or their credit is dropped. A slot is issued only when a
    credit is free, so nothing behind the block RAM ever waits for ``o.ready``, and ``o`` comes
    from registers.

    Timing: one slot per cycle (a zero pixel costs a cycle here and nothing downstream), the
    next timestep's scan follows its EOT slot at once; a stalled ``o`` holds the scan once the
    queue's credits are used up. Latency from a slot's issue to ``o.valid``: 4 cycles.

    Members
    -------
    pixels : In(stream.Signature(unsigned(in_bits)))
    o : Out(stream.Signature(EventLayout(index_width(n_in), in_bits)))
    enable : In(1)
        Pixels are accepted only while high.
    busy : Out(1)
        Loading (after the first pixel) or streaming (until the last EOT has been sent).
    done : Out(1)
        Pulses with the handshake of the last EOT of the inference.
    """

    #: Credits of the output queue: a slot holds its credit for six cycles from its issue to
    #: its return (four to the handshake, two for the return), so six keep the scan at one slot
    #: per cycle.
    CREDITS = 6

    def __init__(self, *, n_in, in_bits, timesteps):
        self._n = check_int("n_in", n_in, minimum=1)
        self._bits = check_int("in_bits", in_bits, minimum=1)
        self._T = check_int("timesteps", timesteps, minimum=1)
        self.out_layout = EventLayout(index_width(n_in), in_bits)
        super().__init__({
            "pixels": In(stream.Signature(unsigned(in_bits))),
            "o": Out(stream.Signature(self.out_layout)),
            "enable": In(1),
            "busy": Out(1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, T = self._n, self._T
        m.submodules.buf = buf = Memory(shape=unsigned(self._bits), depth=n, init=[])
        wp = buf.write_port()
        rp = buf.read_port()
        tok_layout = data.StructLayout({"tok": self.out_layout, "last": 1})
        m.submodules.q = q = CreditQueue(shape=tok_layout, depth=8, credits=self.CREDITS)

        load_i = Signal(range(n))
        streaming = Signal()        # from the last pixel loaded to the last EOT sent
        scan = Signal()             # slots left to issue in this inference
        sc = Signal(range(n + 1))   # the next slot: pixel sc, or the EOT when sc == n
        sc_eot = Signal()           # sc == n, registered
        t = Signal(range(T))
        t_last = Signal(init=int(T == 1))   # t == T - 1, registered

        m.d.comb += [
            self.pixels.ready.eq(~streaming & self.enable),
            wp.addr.eq(load_i),
            wp.data.eq(self.pixels.payload),
            wp.en.eq(self.pixels.valid & self.pixels.ready),
            self.busy.eq(streaming | (load_i != 0)),
        ]
        with m.If(wp.en):
            with m.If(load_i == n - 1):
                m.d.sync += [load_i.eq(0), streaming.eq(1), scan.eq(1)]
            with m.Else():
                m.d.sync += load_i.eq(load_i + 1)

        # Issue: one slot per cycle while a credit is free; the read is harmless for the EOT
        # slot (its data are not used).
        issue = Signal()
        m.d.comb += [issue.eq(scan & q.room), rp.addr.eq(sc), rp.en.eq(issue), q.take.eq(issue)]
        r_valid = Signal()
        r_i = Signal(range(n))
        r_eot = Signal()
        r_last = Signal()
        m.d.sync += r_valid.eq(issue)
        with m.If(issue):
            m.d.sync += [r_i.eq(sc), r_eot.eq(sc_eot), r_last.eq(sc_eot & t_last)]
            with m.If(sc_eot):
                m.d.sync += [sc.eq(0), sc_eot.eq(0)]
                with m.If(t_last):
                    m.d.sync += [scan.eq(0), t.eq(0), t_last.eq(int(T == 1))]
                with m.Else():
                    m.d.sync += [t.eq(t + 1), t_last.eq(t + 2 == T)]
            with m.Else():
                m.d.sync += [sc.eq(sc + 1), sc_eot.eq(sc + 1 == n)]

        # Read data registered (X), then into the queue: EOT slots and non-zero pixels; a zero
        # pixel returns its credit.
        x_valid = Signal()
        x_keep = Signal()
        x_tok = Signal(tok_layout)
        m.d.sync += x_valid.eq(r_valid)
        with m.If(r_valid):
            m.d.sync += [x_keep.eq(r_eot | (rp.data != 0)), x_tok.last.eq(r_last)]
            with m.If(r_eot):
                m.d.sync += x_tok.tok.kind.eq(EventKind.EOT)
            with m.Else():
                m.d.sync += [x_tok.tok.kind.eq(EventKind.EVENT), x_tok.tok.index.eq(r_i),
                             x_tok.tok.value.eq(rp.data)]
        m.d.comb += [
            q.w_data.eq(x_tok),
            q.w_en.eq(x_valid & x_keep),
            q.drop.eq(x_valid & ~x_keep),
            self.o.valid.eq(q.o.valid),
            self.o.payload.eq(q.o.payload.tok),
            q.o.ready.eq(self.o.ready),
        ]
        out_last = self.o.valid & self.o.ready & q.o.payload.last
        with m.If(out_last):
            m.d.sync += streaming.eq(0)
        m.d.comb += self.done.eq(out_last)
        return m


class NetworkTop(wiring.Component):
    """The accelerator of an IR network, residual joins included (ports in
    ``docs/hw-interfaces.md``).

    Timing: cores overlap in a pipeline (a core integrates timestep t+1 while the next one
    sweeps t); an inference takes about Σ updates + T·(N_out + 5) cycles of the slowest core plus
    the pipeline fill. The next image's pixels are accepted once ``busy`` is low.

    Parameters
    ----------
    net : golden.ir.Network
        Any IR network: dense and conv2d layers, barrier and SEW joins.
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

    Members
    -------
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
                 monitor=False, stall_port=False, weights="rom", primitive=False):
        check_supported(net)
        self._weights = weight_storage(net, weights)
        self._primitive = bool(primitive)
        self.wload_layout = wload_top_layout(net, self._weights)
        self.wload_map = {layer.name: (k, spram_geometry(layer.w_bits,
                                                         int(layer.weight.size))[3])
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
            "pixels": In(stream.Signature(unsigned(net.input.in_bits))),
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
        if self._weights.get(layer.name) == "spram":
            core = LayerCore.from_network(self._net, layer.name, discharge=self._discharge,
                                          synapse=self._synapse, weights="spram",
                                          primitive=self._primitive)
        else:
            core = layer_core(self._net, layer.name, discharge=self._discharge,
                              synapse=self._synapse)
        return core, list(zip(core.inputs, core.in_layouts))

    def elaborate(self, platform):
        m = Module()
        net = self._net
        T = net.timesteps
        m.submodules.streamer = st = InputStreamer(n_in=net.input.size,
                                                   in_bits=net.input.in_bits, timesteps=T)
        wiring.connect(m, wiring.flipped(self.pixels), st.pixels)

        # Cores in IR order; event sources by name.
        sources = {INPUT: st.o}
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

        am_valid = Signal()         # a result beat waits in the argmax' first register
        am2_valid = Signal()        # ... or in its second
        am_idle = Signal(init=1)    # ~am_valid & ~am2_valid, a register of its own
        # Readout tokens → result beats; EOT tokens are consumed here. A small queue after the
        # readout core keeps this logic (whose ready depends on the token's kind) local: its
        # output and its input's ready are registers.
        m.submodules.readout_queue = roq = Queue(shape=self.tap_layouts[-1], depth=2)
        wiring.connect(m, cores[-1].o, roq.i)
        ro = roq.o
        is_ro = ro.payload.kind == EventKind.READOUT
        n_cls = self.n_classes
        m.d.comb += [
            self.result.valid.eq(ro.valid & is_ro & am_idle),
            self.result.payload.index.eq(ro.payload.index),
            self.result.payload.potential.eq(ro.payload.value),
            self.result.payload.last.eq(ro.payload.index == n_cls - 1),
            ro.ready.eq(Mux(is_ro, self.result.ready & am_idle, 1)),
        ]
        # Argmax in three steps from registers: the beat is registered (AM), compared with the
        # best so far in two halves (the three results registered: AM2), then taken as the best
        # when greater; ties keep the lowest index. A beat is accepted only while AM and AM2
        # are empty, so each compare sees the best of all earlier beats (result beats come at
        # most every third cycle). ``busy`` stays high until the prediction is final.
        best = Signal.like(self.result.payload.potential)
        pred = Signal.like(self.prediction)
        am2_first, am2_hgt, am2_heq, am2_lgt = Signal(), Signal(), Signal(), Signal()
        am_index, am2_index = Signal.like(self.prediction), Signal.like(self.prediction)
        am_value = Signal.like(self.result.payload.potential)
        am2_value = Signal.like(self.result.payload.potential)
        beat = Signal()
        m.d.comb += [self.prediction.eq(pred), beat.eq(self.result.valid & self.result.ready)]
        m.d.sync += [am_valid.eq(beat), am2_valid.eq(am_valid), am_idle.eq(~beat & ~am_valid)]
        with m.If(beat):
            m.d.sync += [am_index.eq(ro.payload.index), am_value.eq(ro.payload.value)]
        hgt, heq, lgt = _greater_parts(am_value, best)
        with m.If(am_valid):
            m.d.sync += [am2_index.eq(am_index), am2_value.eq(am_value),
                         am2_first.eq(am_index == 0), am2_hgt.eq(hgt), am2_heq.eq(heq),
                         am2_lgt.eq(lgt)]
        with m.If(am2_valid & (am2_first | am2_hgt | (am2_heq & am2_lgt))):
            m.d.sync += [best.eq(am2_value), pred.eq(am2_index)]

        ro_t = Signal(range(T))
        final = Signal()
        with m.If(ro.valid & ro.ready & (ro.payload.kind == EventKind.EOT)):
            with m.If(ro_t == T - 1):
                m.d.sync += ro_t.eq(0)
                m.d.comb += final.eq(1)
            with m.Else():
                m.d.sync += ro_t.eq(ro_t + 1)
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

        # Counter access, two register stages (CTR_LATENCY): the counter of every core selected
        # by the address' low bits, then the core by its high bits.
        stride_bits = (COUNTER_STRIDE - 1).bit_length()
        c_sel = self.ctr_addr[:stride_bits]
        k_sel = Signal(len(self.ctr_addr) - stride_bits)
        m.d.sync += k_sel.eq(self.ctr_addr[stride_bits:])
        per_core = []
        for k, core in enumerate(cores):
            word = Signal(COUNTER_WIDTH, name=f"ctr_word_{k}")
            with m.Switch(c_sel):
                for c, name in enumerate(COUNTERS):
                    with m.Case(c):
                        m.d.sync += word.eq(getattr(core.counters, name))
                with m.Default():
                    m.d.sync += word.eq(0)
            per_core.append(word)
        if len(k_sel) == 0:         # one layer: no core to select
            m.d.sync += self.ctr_data.eq(per_core[0])
            return m
        with m.Switch(k_sel):
            for k, word in enumerate(per_core):
                with m.Case(k):
                    m.d.sync += self.ctr_data.eq(word)
            with m.Default():
                m.d.sync += self.ctr_data.eq(0)
        return m
