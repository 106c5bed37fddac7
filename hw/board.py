"""Board top: a :class:`~hw.network.NetworkTop` behind a UART and a small byte protocol.

The protocol (``docs/board.md`` is the reference) is a request/response exchange of bytes. Every
command is one ASCII opcode byte, sometimes followed by arguments; every answer starts with the
same opcode byte (``!`` for an unknown opcode), then little-endian fields:

======  ==========================  ======================================================
opcode  request (after the opcode)  answer (after the echoed opcode)
======  ==========================  ======================================================
``?``   —                           descriptor (:data:`INFO_SIZE` bytes, :func:`info_bytes`)
``I``   n_in pixels, pixel_bytes    prediction (u16), once the inference has finished
        each, flat CHW order
``R``   —                           prediction (u16), then n_classes potentials of
                                    potential_bytes each (two's complement)
``C``   counter address (u16)       the counter (u32); address = layer·16 + counter
``K``   —                           every counter (u32), layer by layer, counters 0..9
``O``   —                           overflow flags, overflow_bytes (bit = layer index)
``Z``   —                           nothing: counters and overflow flags are cleared
``W``   layer (u8), word address    nothing, once the top's ``wload`` port took the word
        (u16 or u32), packed word   (``!`` ``W`` for a layer not in SPRAM); boards without
        (data_bytes)                SPRAM layers answer ``!`` ``W`` as to any unknown opcode
``A``   index k (u8), value         nothing, once alpha_{k+1} of the early exit is written
        (alpha_bytes: potential     (docs/early-exit.md; ``!`` ``A`` for k >= T − 1); only
        width + 1 bits)             boards of a network with ``early_exit`` and T > 1
``S``   —                           timesteps the last inference used (u16); only boards of
                                    a network with ``early_exit``
other   —                           ``!`` then the offending byte
======  ==========================  ======================================================

A break on the line (rx low for two frames or more) resets everything but the receiver, which
recovers the board from an interrupted command (for instance a partial ``I``).
"""

import json
import math
import struct
import zlib

import numpy as np
from amaranth.hdl import (Array, Cat, Const, Elaboratable, Module, ResetInserter, Shape, Signal,
                          signed)
from amaranth.lib import fifo, io, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.counters import HW_COUNTERS

from .layout import CTR_LATENCY
from .uart import UARTRx, UARTTx, divisor_for

__all__ = [
    "BoardTop", "BoardPlatformTop", "COUNTER_NAMES", "CTR_STRIDE", "PROTOCOL_VERSION", "MAGIC",
    "INFO_SIZE", "OP_INFO", "OP_INFER", "OP_READOUT", "OP_COUNTER", "OP_COUNTERS", "OP_OVERFLOW",
    "OP_CLEAR", "OP_WLOAD", "OP_ALPHA", "OP_STEPS", "OP_ERROR", "INFO_V1_FORMAT", "INFO_V1_SIZE", "INFO_EXT_FORMAT",
    "info_bytes", "load_geometry", "network_fingerprint", "DEFAULT_BAUD",
]

PROTOCOL_VERSION = 2
MAGIC = b"MLSN"
DEFAULT_BAUD = 115200
COUNTER_NAMES = HW_COUNTERS     # the protocol sends a layer's counters in this order
CTR_STRIDE = 16

OP_INFO = ord("?")
OP_INFER = ord("I")
OP_READOUT = ord("R")
OP_COUNTER = ord("C")
OP_COUNTERS = ord("K")
OP_OVERFLOW = ord("O")
OP_CLEAR = ord("Z")
OP_WLOAD = ord("W")
OP_ALPHA = ord("A")
OP_STEPS = ord("S")
OP_ERROR = ord("!")

# Descriptor, version 1: magic(4) version(1) n_layers(1) in_bits(1) potential_width(1) n_in(4)
# n_classes(2) timesteps(2) counters_per_layer(1) overflow_bytes(1) clk_freq(4) fingerprint(4).
INFO_V1_FORMAT = "<4sBBBBIHHBBII"
INFO_V1_SIZE = 26
# Version 2 appends load_words(4) addr_bytes(1) data_bytes(1), then the SPRAM layer mask
# (overflow_bytes bytes, bit k = layer k): INFO_SIZE + overflow_bytes bytes in all.
INFO_EXT_FORMAT = "<IBB"
INFO_FORMAT = INFO_V1_FORMAT + INFO_EXT_FORMAT[1:]
INFO_SIZE = 32


def network_fingerprint(net):
    """CRC-32 of a network's description and arrays: tells the host which network a board runs."""
    doc = json.dumps(net.to_json(), sort_keys=True).encode()
    crc = zlib.crc32(doc)
    for key, arr in sorted(net.arrays().items()):
        crc = zlib.crc32(key.encode(), crc)
        crc = zlib.crc32(np.ascontiguousarray(arr, dtype="<i8").tobytes(), crc)
    return crc & 0xFFFFFFFF


def load_geometry(net, weights="rom"):
    """What a board built with ``weights`` needs loaded over ``W`` (docs/board.md):
    ``(load_words, addr_bytes, data_bytes, spram_layers)``, the number of ``wload`` words,
    the bytes of a ``W`` word address (2 or 4) and of a packed word, and the IR indexes of the
    layers in SPRAM; ``(0, 0, 0, ())`` when every layer keeps its weights in ROM.

    Raises
    ------
    TypeError, ValueError
        An invalid ``weights`` (:func:`hw.network.weight_storage`).
    """
    from .layer import spram_layer_geometry
    from .network import weight_storage, wload_top_layout
    store = weight_storage(net, weights)
    layout = wload_top_layout(net, store)
    if layout is None:
        return 0, 0, 0, ()
    layers = tuple(k for k, layer in enumerate(net.layers) if store.get(layer.name) == "spram")
    words = sum(spram_layer_geometry(net.layers[k])[3] for k in layers)
    addr_bits = Shape.cast(layout["addr"].shape).width
    data_bits = Shape.cast(layout["data"].shape).width
    return words, 2 if addr_bits <= 16 else 4, _bytes_for(data_bits), layers


def info_bytes(net, *, clk_freq, potential_width, weights="rom"):
    """The descriptor a board answers to ``?`` (without the echoed opcode); ``weights`` as the
    board's core was built (:func:`load_geometry`)."""
    n_layers = len(net.layers)
    if n_layers > 255:
        raise ValueError(f"a board supports at most 255 layers, not {n_layers}")
    if not 1 <= potential_width <= 64:
        raise ValueError(f"a board supports readout potentials of 1 to 64 bits, not "
                         f"{potential_width}")
    if net.n_classes > 0xFFFF:
        raise ValueError(f"a board supports at most 65535 classes, not {net.n_classes}")
    load = load_geometry(net, weights)
    out = struct.pack(INFO_FORMAT, MAGIC, PROTOCOL_VERSION, n_layers,
                      net.input.in_bits, potential_width, net.input.size,
                      net.n_classes, net.timesteps, len(COUNTER_NAMES),
                      _bytes_for(n_layers), int(round(clk_freq)) & 0xFFFFFFFF,
                      network_fingerprint(net), *load[:3])
    mask = sum(1 << k for k in load[3])
    out += mask.to_bytes(_bytes_for(n_layers), "little")
    assert len(out) == INFO_SIZE + _bytes_for(n_layers)
    return out


def _bytes_for(bits):
    return max(1, math.ceil(bits / 8))


def _pixel_bytes(net):
    return _bytes_for(net.input.in_bits)


_PORTS = ("pixels", "result", "prediction", "busy", "clear", "ctr_addr", "ctr_data", "overflow")

# Continuations of the SEND state.
_RET_IDLE, _RET_INFO, _RET_READOUT, _RET_COUNTERS = range(4)


class BoardTop(wiring.Component):
    """A network core behind a UART speaking the protocol of this module.

    Parameters
    ----------
    net : golden.ir.Network
        The network the core was built from (sizes, descriptor, fingerprint).
    clk_freq : float
        Clock frequency in Hz (sets the UART divisor and is reported in the descriptor).
    baud : int
        Line rate, 115200 by default.
    divisor : int or None
        Clock cycles per bit; overrides ``baud`` (simulations use a small value such as 4).
    core : wiring.Component or None
        A component with the ports of ``NetworkTop`` (docs/hw-interfaces.md); ``None`` builds
        ``hw.network.NetworkTop(net, weights=weights, primitive=primitive)``.
    fifo_depth : int
        Depth of the receive FIFO between the UART and the command engine.
    weights : "rom", "spram" or dict
        Where the core keeps the dense and conv2d weights (:func:`hw.network.weight_storage`).
        With a layer in SPRAM the core has a ``wload`` port (a given ``core`` must have it, and
        ``wload_map``), the engine answers ``W`` and the descriptor says what to load
        (:func:`load_geometry`).
    primitive : bool
        The core's SPRAM layers instantiate ``SB_SPRAM256KA`` (iCE40 builds); else the model.
    ram_width : int or None
        The core's ``ram_width`` (:class:`hw.network.NetworkTop`; 18 for ECP5 builds).

    Members
    -------
    rx : In(1)
        Serial input (idles high).
    tx : Out(1)
        Serial output (idles high).
    overflow_any : Out(1)
        Some layer's sticky overflow flag is set (for an LED).
    busy : Out(1)
        The core is running an inference.
    uart_rx, uart_tx : UARTRx, UARTTx
        The UART halves (``uart_rx.brk`` is the break that resets the engine and the core).

    Timing: commands are handled at line rate; an inference runs at the core's speed between
    the last pixel byte and the answer.
    """

    def __init__(self, net, *, clk_freq, baud=DEFAULT_BAUD, divisor=None, core=None,
                 fifo_depth=16, weights="rom", primitive=False, ram_width=None):
        from golden.ir import Network
        if not isinstance(net, Network):
            raise TypeError(f"net must be a golden.ir.Network, not {type(net).__name__}")
        if divisor is None:
            divisor = divisor_for(clk_freq, baud)
        if isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int) or fifo_depth < 2:
            raise ValueError(f"fifo_depth must be an integer >= 2, not {fifo_depth!r}")
        load = load_geometry(net, weights)
        if core is None:
            from .network import NetworkTop
            core = NetworkTop(net, weights=weights, primitive=primitive, ram_width=ram_width)
        missing = [p for p in _PORTS + (("wload",) if load[0] else ()) if not hasattr(core, p)]
        if missing:
            raise TypeError(f"core lacks the NetworkTop port(s) {', '.join(missing)}")
        if not load[0] and hasattr(core, "wload"):
            raise TypeError("core has a wload port but weights keeps every layer in ROM")
        self._net = net
        self._core = core
        self._divisor = divisor
        self._clk_freq = clk_freq
        self._fifo_depth = fifo_depth
        self._load = load
        self._potential_width = len(core.result.payload.potential)
        self._info = info_bytes(net, clk_freq=clk_freq, potential_width=self._potential_width,
                                weights=weights)
        self.uart_rx = UARTRx(divisor=divisor)
        self.uart_tx = UARTTx(divisor=divisor)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "overflow_any": Out(1),
            "busy": Out(1),
        })

    @property
    def core(self):
        return self._core

    @property
    def divisor(self):
        return self._divisor

    @property
    def info(self):
        """The descriptor bytes answered to ``?``."""
        return self._info

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = self.uart_rx
        m.submodules.uart_tx = utx = self.uart_tx
        engine = _Engine(self._net, self._core, info=self._info, load=self._load,
                         potential_width=self._potential_width, fifo_depth=self._fifo_depth)
        # A break resets the engine (and the core inside it), not the receiver that saw it.
        m.submodules.engine = ResetInserter(urx.brk)(engine)
        m.d.comb += urx.rx.eq(self.rx)
        m.d.comb += self.tx.eq(utx.tx)
        wiring.connect(m, urx.o, engine.i)
        wiring.connect(m, engine.o, utx.i)
        m.d.comb += [
            self.overflow_any.eq(self._core.overflow.any()),
            self.busy.eq(self._core.busy),
        ]
        return m


class _Engine(wiring.Component):
    """The command interpreter: bytes in, bytes out, the core inside."""

    def __init__(self, net, core, *, info, load, potential_width, fifo_depth):
        self._net = net
        self._core = core
        self._info = info
        self._load = load
        self._pw = potential_width
        self._fifo_depth = fifo_depth
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        net, core = self._net, self._core
        m.submodules.core = core
        n_in = net.input.size
        n_classes = net.n_classes
        n_layers = len(net.layers)
        in_bits = net.input.in_bits
        pix_bytes = _pixel_bytes(net)
        pot_bytes = _bytes_for(self._pw)
        ovf_bytes = _bytes_for(n_layers)

        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=8, depth=self._fifo_depth)
        wiring.connect(m, wiring.flipped(self.i), q.w_stream)
        rx = q.r_stream

        # Readout potentials, captured as the result beats go by.
        m.submodules.res = res = Memory(shape=signed(self._pw), depth=max(n_classes, 1), init=[])
        wp = res.write_port()
        rp = res.read_port()
        got_last = Signal()
        m.d.comb += [
            core.result.ready.eq(1),
            wp.addr.eq(core.result.payload.index),
            wp.data.eq(core.result.payload.potential),
            wp.en.eq(core.result.valid),
        ]
        with m.If(core.result.valid & core.result.payload.last):
            m.d.sync += got_last.eq(1)

        word_bits = max(40, 8 * pot_bytes, 8 + 8 * ovf_bytes, 24)
        word = Signal(word_bits)
        nbytes = Signal(range(word_bits // 8 + 1))
        ret = Signal(range(4))
        load_words, addr_bytes, data_bytes, spram_layers = self._load
        w_len = 1 + addr_bytes + data_bytes if load_words else 0
        idx = Signal(range(max(n_in, n_classes, len(self._info)) + 1))
        has_alpha = hasattr(core, "alpha_load")
        has_steps = hasattr(core, "timesteps_used")
        a_len = 1 + _bytes_for(core.alpha_width) if has_alpha else 0
        sub = Signal(range(max(pix_bytes, 2, w_len, a_len) + 1))
        pix = Signal(8 * pix_bytes)
        pred = Signal(16)
        ctr_sel = Signal(16)
        ctr_wait = Signal(range(CTR_LATENCY + 1))
        ctr_end = n_layers * CTR_STRIDE
        rom = Array(Const(b, 8) for b in self._info)
        m.d.comb += [
            rp.addr.eq(idx),
            core.ctr_addr.eq(ctr_sel),
            core.pixels.payload.eq(pix[:in_bits]),
        ]

        def send(value, n, then=_RET_IDLE):
            m.d.sync += [word.eq(value), nbytes.eq(n), ret.eq(then)]
            m.next = "SEND"

        def request_states(prefix, req, n, refused, port, op):
            # <prefix>BYTES collects the n request bytes little-endian (each at the top of
            # req); <prefix>PUSH answers "!" op if refused, else hands req to the core's
            # stream ``port`` (its payload driven from req by the caller) and echoes op.
            with m.State(f"{prefix}BYTES"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    m.d.sync += req.eq(Cat(req[8:], rx.payload))
                    m.d.sync += sub.eq(sub + 1)
                    with m.If(sub == n - 1):
                        m.next = f"{prefix}PUSH"
            with m.State(f"{prefix}PUSH"):
                with m.If(refused):
                    send(Cat(Const(OP_ERROR, 8), Const(op, 8)), 2)
                with m.Else():
                    m.d.comb += port.valid.eq(1)
                    with m.If(port.ready):
                        send(op, 1)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    with m.Switch(rx.payload):
                        with m.Case(OP_INFO):
                            m.d.sync += idx.eq(0)
                            send(OP_INFO, 1, _RET_INFO)
                        with m.Case(OP_INFER):
                            m.d.sync += [idx.eq(0), sub.eq(0), got_last.eq(0)]
                            m.next = "PIXEL"
                        with m.Case(OP_READOUT):
                            m.d.sync += idx.eq(0)
                            send(Cat(Const(OP_READOUT, 8), pred), 3, _RET_READOUT)
                        with m.Case(OP_COUNTER):
                            m.d.sync += sub.eq(0)
                            m.next = "ADDR"
                        with m.Case(OP_COUNTERS):
                            m.d.sync += ctr_sel.eq(0)
                            send(OP_COUNTERS, 1, _RET_COUNTERS)
                        with m.Case(OP_OVERFLOW):
                            send(Cat(Const(OP_OVERFLOW, 8), core.overflow), 1 + ovf_bytes)
                        with m.Case(OP_CLEAR):
                            m.d.comb += core.clear.eq(1)
                            send(OP_CLEAR, 1)
                        if w_len:
                            with m.Case(OP_WLOAD):
                                m.d.sync += sub.eq(0)
                                m.next = "WBYTES"
                        if has_alpha:
                            with m.Case(OP_ALPHA):
                                m.d.sync += sub.eq(0)
                                m.next = "ABYTES"
                        if has_steps:
                            with m.Case(OP_STEPS):
                                send(Cat(Const(OP_STEPS, 8), core.timesteps_used), 3)
                        with m.Default():
                            send(Cat(Const(OP_ERROR, 8), rx.payload), 2)

            with m.State("SEND"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(word[:8])]
                with m.If(self.o.ready):
                    m.d.sync += [word.eq(word >> 8), nbytes.eq(nbytes - 1)]
                    with m.If(nbytes == 1):
                        with m.Switch(ret):
                            with m.Case(_RET_IDLE):
                                m.next = "IDLE"
                            with m.Case(_RET_INFO):
                                m.next = "INFO"
                            with m.Case(_RET_READOUT):
                                m.next = "READOUT"
                            with m.Case(_RET_COUNTERS):
                                m.next = "COUNTERS"

            with m.State("INFO"):
                with m.If(idx == len(self._info)):
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += idx.eq(idx + 1)
                    send(rom[idx], 1, _RET_INFO)

            with m.State("PIXEL"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    # Little-endian: each byte enters at the top and moves down.
                    m.d.sync += pix.eq(Cat(pix[8:], rx.payload) if pix_bytes > 1 else rx.payload)
                    with m.If(sub == pix_bytes - 1):
                        m.d.sync += sub.eq(0)
                        m.next = "PUSH"
                    with m.Else():
                        m.d.sync += sub.eq(sub + 1)

            with m.State("PUSH"):
                m.d.comb += core.pixels.valid.eq(1)
                with m.If(core.pixels.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == n_in - 1):
                        m.next = "RESULT"
                    with m.Else():
                        m.next = "PIXEL"

            with m.State("RESULT"):
                # `prediction` is final once the core is no longer busy.
                with m.If(got_last & ~core.busy):
                    m.d.sync += pred.eq(core.prediction)
                    send(Cat(Const(OP_INFER, 8), core.prediction), 3)

            with m.State("READOUT"):
                # The read port has seen `idx` for at least one cycle (the SEND state).
                with m.If(idx == n_classes):
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += idx.eq(idx + 1)
                    send(rp.data, pot_bytes, _RET_READOUT)

            with m.State("ADDR"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    m.d.sync += ctr_sel.eq(Cat(ctr_sel[8:], rx.payload))
                    m.d.sync += sub.eq(sub + 1)
                    with m.If(sub == 1):
                        m.next = "COUNTER"

            # ctr_data follows ctr_sel CTR_LATENCY edges later: both states wait that long
            # after entering (ctr_sel changes only right before them).
            with m.State("COUNTER"):
                with m.If(ctr_wait != CTR_LATENCY):
                    m.d.sync += ctr_wait.eq(ctr_wait + 1)
                with m.Else():
                    m.d.sync += ctr_wait.eq(0)
                    send(Cat(Const(OP_COUNTER, 8), core.ctr_data[:32]), 5)

            with m.State("COUNTERS"):
                with m.If(ctr_sel == ctr_end):
                    m.next = "IDLE"
                with m.Elif(ctr_wait != CTR_LATENCY):
                    m.d.sync += ctr_wait.eq(ctr_wait + 1)
                with m.Else():
                    m.d.sync += ctr_wait.eq(0)
                    with m.If(ctr_sel[:4] == len(COUNTER_NAMES) - 1):
                        m.d.sync += ctr_sel.eq(Cat(Const(0, 4), ctr_sel[4:] + 1))
                    with m.Else():
                        m.d.sync += ctr_sel.eq(ctr_sel + 1)
                    send(core.ctr_data[:32], 4, _RET_COUNTERS)

            if w_len:
                # W: layer, address and word arrive little-endian, each byte at the top.
                w_req = Signal(8 * w_len)
                w_layer, w_rest = w_req[:8], w_req[8:]
                w_ok = Cat(w_layer == k for k in spram_layers).any()
                m.d.comb += [
                    core.wload.payload.layer.eq(w_layer),
                    core.wload.payload.addr.eq(w_rest[:8 * addr_bytes]),
                    core.wload.payload.data.eq(w_rest[8 * addr_bytes:]),
                ]

                # The top takes a word only while it is idle; the echo says the word was taken.
                # A word for a layer without SPRAM (or no layer) would alias after truncation
                # to the top's layer field: refused.
                request_states("W", w_req, w_len, ~w_ok, core.wload, OP_WLOAD)

            if has_alpha:
                # A: index and value arrive little-endian, each byte at the top; the top
                # takes the value while it is idle (an index >= T - 1 is refused).
                a_req = Signal(8 * a_len)
                a_index = a_req[:8]
                m.d.comb += [core.alpha_load.payload.index.eq(a_index),
                             core.alpha_load.payload.value.eq(a_req[8:])]

                request_states("A", a_req, a_len, a_index >= net.timesteps - 1,
                               core.alpha_load, OP_ALPHA)
        return m


class BoardPlatformTop(Elaboratable):
    """The design handed to an amaranth-boards platform: :class:`BoardTop` on the board's UART
    (``uart`` 0) at the platform's default clock; LED 0 lights on any overflow.

    Parameters
    ----------
    net : golden.ir.Network
    baud : int
    core_factory : callable or None
        ``core_factory(net)`` returns the core; ``None`` builds ``hw.network.NetworkTop(net)``.
    weights, primitive, ram_width :
        As :class:`BoardTop`'s (``primitive=True`` on iCE40: ``SB_SPRAM256KA`` cells;
        ``ram_width=18`` on ECP5).
    """

    def __init__(self, net, *, baud=DEFAULT_BAUD, core_factory=None, weights="rom",
                 primitive=False, ram_width=None):
        self._ram_width = ram_width
        self._net = net
        self._baud = baud
        self._core_factory = core_factory
        self._weights = weights
        self._primitive = primitive

    def elaborate(self, platform):
        m = Module()
        core = self._core_factory(self._net) if self._core_factory is not None else None
        m.submodules.board = board = BoardTop(
            self._net, clk_freq=platform.default_clk_frequency, baud=self._baud, core=core,
            weights=self._weights, primitive=self._primitive, ram_width=self._ram_width)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.led_buf = led_buf = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += [
            board.rx.eq(rx_buf.i),
            tx_buf.o.eq(board.tx),
            led_buf.o.eq(board.overflow_any),
        ]
        return m
