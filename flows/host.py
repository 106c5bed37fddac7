"""Host driver for the board protocol of :mod:`hw.board` (reference: ``docs/board.md``).

:class:`Board` speaks the protocol over a :class:`Transport`: :class:`SerialTransport` for a real
board (pyserial), :class:`SimTransport` for the board top running in the Amaranth simulator (it
drives the UART rx pin and listens to the tx pin bit by bit), so the same driver code is tested
against the RTL.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

import numpy as np

from golden.errors import MlsnnError
from hw.board import (COUNTER_NAMES, CTR_STRIDE, INFO_EXT_FORMAT, INFO_V1_FORMAT, INFO_V1_SIZE,
                      MAGIC, OP_ALPHA, OP_CLEAR, OP_COUNTER, OP_COUNTERS, OP_ERROR, OP_INFER,
                      OP_INFO, OP_OVERFLOW, OP_READOUT, OP_STEPS, OP_WLOAD, PROTOCOL_VERSION,
                      network_fingerprint)

__all__ = ["Transport", "SerialTransport", "SimTransport", "Board", "BoardInfo", "BoardRun"]


class Transport:
    """A byte pipe to a board: ``write``, ``read`` (exactly n bytes or :class:`MlsnnError`),
    ``send_break`` (reset the board's command engine) and ``close``."""

    def write(self, data: bytes):
        raise NotImplementedError

    def read(self, n: int) -> bytes:
        raise NotImplementedError

    def send_break(self):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialTransport(Transport):
    """A serial port through pyserial (8N1).

    Parameters
    ----------
    port : str
        Device, e.g. ``/dev/ttyUSB1`` (the iCEBreaker's second FTDI interface) or
        ``/dev/ttyUSB0`` (ULX3S).
    baud : int
    timeout : float
        Seconds to wait for an answer before giving up.

    Raises
    ------
    MlsnnError
        If pyserial is missing or the port cannot be opened.
    """

    def __init__(self, port, *, baud=115200, timeout=5.0):
        try:
            import serial
        except ImportError:
            raise MlsnnError("pyserial is not installed: pip install 'mlsnn[board]'") from None
        self._port = port
        try:
            self._ser = serial.Serial(port, baudrate=baud, timeout=timeout, write_timeout=timeout)
        except (serial.SerialException, OSError, ValueError) as e:
            raise MlsnnError(f"cannot open serial port {port}: {_port_error(e)}") from None
        self._ser.reset_input_buffer()

    def write(self, data):
        self._ser.write(bytes(data))
        self._ser.flush()

    def read(self, n):
        data = self._ser.read(n)
        if len(data) < n:
            raise MlsnnError(f"timeout on {self._port}: expected {n} byte(s) from the board, got "
                             f"{len(data)} (is the board programmed with an mlsnn bitstream?)")
        return data

    def send_break(self):
        self._ser.send_break(duration=0.05)
        self._ser.reset_input_buffer()

    def close(self):
        self._ser.close()


def _port_error(e):
    import errno
    code = getattr(e, "errno", None)
    text = str(e)
    if code == errno.ENOENT or "No such file" in text:
        return "no such device (is the board plugged in? see 'ls /dev/ttyUSB*')"
    if code == errno.EACCES or "Permission denied" in text:
        return "permission denied (add yourself to the 'dialout' group)"
    if code == errno.EBUSY or "busy" in text.lower():
        return "the device is busy (another program has it open)"
    return " ".join(text.split()) or type(e).__name__


class SimTransport(Transport):
    """The board top (:class:`hw.board.BoardTop`) in the Amaranth simulator.

    A process models the host's serial chip: it shifts queued bytes onto ``rx`` (8N1, ``divisor``
    cycles per bit) and decodes ``tx`` with mid-bit sampling. :meth:`read` advances the
    simulation until enough bytes arrived.

    Parameters
    ----------
    dut : hw.board.BoardTop
    max_cycles : int
        Simulated clock cycles :meth:`read` waits before it reports a timeout.
    vcd : str or None
        Write a waveform to this path (closed by :meth:`close`).

    Members
    -------
    sim : amaranth.sim.Simulator
        Add more processes (e.g. models of a core) before the first read.
    cycles : int
        Clock cycles simulated so far.
    """

    PERIOD = 1e-6     # one simulated clock cycle (the value only scales the waveform)

    def __init__(self, dut, *, max_cycles=2_000_000, vcd=None):
        from amaranth.sim import Simulator
        self._dut = dut
        self._div = dut.divisor
        self._max_cycles = max_cycles
        self._to_dut = deque()
        self._from_dut = bytearray()
        self._break_bits = 0
        self._sending = False
        self.cycles = 0
        self.sim = Simulator(dut)
        self.sim.add_clock(self.PERIOD)
        self.sim.add_process(self._drive_rx)
        self.sim.add_process(self._watch_tx)
        self._vcd = None
        if vcd is not None:
            self._vcd = self.sim.write_vcd(vcd)
            self._vcd.__enter__()

    async def _drive_rx(self, ctx):
        div, rx = self._div, self._dut.rx
        ctx.set(rx, 1)
        while True:
            if self._break_bits:
                ctx.set(rx, 0)
                await ctx.tick().repeat(self._break_bits * div)
                self._break_bits = 0
                ctx.set(rx, 1)
                await ctx.tick().repeat(2 * div)
            elif self._to_dut:
                self._sending = True
                byte = self._to_dut.popleft()
                for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:
                    ctx.set(rx, bit)
                    await ctx.tick().repeat(div)
                self._sending = False
            else:
                await ctx.tick()

    async def _watch_tx(self, ctx):
        div, tx = self._div, self._dut.tx
        while True:
            await ctx.negedge(tx)
            (line,) = await ctx.tick().sample(tx).repeat(div // 2)
            if line:
                continue                      # a glitch, not a start bit
            byte = 0
            for k in range(8):
                (line,) = await ctx.tick().sample(tx).repeat(div)
                byte |= line << k
            (line,) = await ctx.tick().sample(tx).repeat(div)
            if line:
                self._from_dut.append(byte)
            # else: a framing error; the byte is dropped, as a real serial chip would

    def _advance(self, cycles):
        self.sim.run_until((self.cycles + cycles) * self.PERIOD)
        self.cycles += cycles

    def write(self, data):
        self._to_dut.extend(bytes(data))

    def read(self, n):
        step = 10 * self._div
        start = self.cycles
        while len(self._from_dut) < n:
            if self.cycles - start > self._max_cycles:
                raise MlsnnError(f"timeout in simulation: expected {n} byte(s) from the board, "
                                 f"got {len(self._from_dut)} after {self.cycles - start} cycles")
            self._advance(step)
        data = bytes(self._from_dut[:n])
        del self._from_dut[:n]
        return data

    def flush(self):
        """Advance until every written byte has left the line."""
        while self._to_dut or self._sending:
            self._advance(10 * self._div)

    def send_break(self):
        self.flush()
        self._break_bits = 25
        self._advance((self._break_bits + 3) * self._div)
        self._from_dut.clear()

    def close(self):
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None


@dataclass(frozen=True)
class BoardInfo:
    """The descriptor a board answers to ``?``."""

    version: int
    n_layers: int
    in_bits: int
    potential_width: int
    n_in: int
    n_classes: int
    timesteps: int
    counters_per_layer: int
    overflow_bytes: int
    clk_freq: int
    fingerprint: int
    load_words: int = 0          # version 2: SPRAM words to load with W (0: none)
    addr_bytes: int = 0          # bytes of a W word address (2 or 4)
    data_bytes: int = 0          # bytes of a W packed word
    spram_layers: tuple = ()     # IR indexes of the layers in SPRAM

    @property
    def needs_weights(self):
        """The board keeps weights in SPRAM: load them (:meth:`Board.load_weights`) first."""
        return self.load_words > 0

    @property
    def pixel_bytes(self):
        return (self.in_bits + 7) // 8

    @property
    def potential_bytes(self):
        return (self.potential_width + 7) // 8


@dataclass
class BoardRun:
    """Results of :meth:`Board.run` on a batch (per image, counters cleared before each).

    Members
    -------
    predictions : ``[B]`` int64
    readout : ``[B, n_classes]`` int64 potentials
    counters : ``{layer_index: {counter: [B] int64}}``
    overflow : ``[B, n_layers]`` bool
    """

    predictions: np.ndarray
    readout: np.ndarray
    counters: dict
    overflow: np.ndarray

    def to_json(self, layer_names=None):
        names = layer_names or [f"layer{i}" for i in sorted(self.counters)]
        return {
            "predictions": [int(p) for p in self.predictions],
            "readout": self.readout.tolist(),
            "layers": [{"name": names[i],
                        "counters": {k: int(v.sum()) for k, v in self.counters[i].items()},
                        "overflow": bool(self.overflow[:, i].any())}
                       for i in sorted(self.counters)],
            "overflow": bool(self.overflow.any()),
        }


class Board:
    """Driver for a board running :class:`hw.board.BoardTop`.

    Parameters
    ----------
    transport : Transport
    reset : bool
        Send a break first, which recovers a board left in the middle of a command.
    weights_loaded : bool
        For a board with SPRAM layers: its weights were loaded since it was programmed (by
        another driver). The hardware cannot tell; the driver refuses inferences until
        :meth:`load_weights` or this flag says the weights are there.

    Members
    -------
    info : BoardInfo
        The descriptor.
    weights_loaded : bool
        Inferences are allowed: no SPRAM layer, or the weights were loaded.

    Raises
    ------
    MlsnnError
        If the board does not answer like an mlsnn board.
    """

    #: W words sent before their echoes are read (the board keeps up with the line).
    LOAD_CHUNK = 256

    def __init__(self, transport, *, reset=True, weights_loaded=False):
        self._t = transport
        if reset:
            transport.send_break()
        self.info = self._read_info()
        self.weights_loaded = bool(weights_loaded) or not self.info.needs_weights

    # -- protocol primitives ---------------------------------------------------------------
    def _expect(self, op):
        got = self._t.read(1)[0]
        if got == op:
            return
        if got == OP_ERROR:
            bad = self._t.read(1)[0]
            raise MlsnnError(f"the board rejected command byte 0x{bad:02x}")
        raise MlsnnError(f"protocol error: expected the echo {chr(op)!r} from the board, got "
                         f"0x{got:02x}")

    def _command(self, op, payload=b""):
        self._t.write(bytes([op]) + bytes(payload))
        self._expect(op)

    def _read_info(self):
        self._t.write(bytes([OP_INFO]))
        got = self._t.read(1)[0]
        if got != OP_INFO:
            raise MlsnnError(f"no mlsnn board answers (got 0x{got:02x} instead of '?')")
        fields = struct.unpack(INFO_V1_FORMAT, self._t.read(INFO_V1_SIZE))
        if fields[0] != MAGIC:
            raise MlsnnError(f"no mlsnn board answers (magic {fields[0]!r})")
        info = BoardInfo(*fields[1:])
        if info.version not in (1, PROTOCOL_VERSION):
            raise MlsnnError(f"the board speaks protocol version {info.version}; this mlsnn "
                             f"speaks versions 1 and {PROTOCOL_VERSION}")
        if info.version == 1:           # no W command: every layer in ROM
            return info
        words, ab, db = struct.unpack(INFO_EXT_FORMAT,
                                      self._t.read(struct.calcsize(INFO_EXT_FORMAT)))
        mask = int.from_bytes(self._t.read(info.overflow_bytes), "little")
        layers = tuple(k for k in range(info.n_layers) if mask >> k & 1)
        if words and (ab not in (2, 4) or db < 1 or not layers) or (not words and layers):
            raise MlsnnError(f"protocol error: the board's descriptor is inconsistent "
                             f"({words} SPRAM words, {ab}-byte addresses, {db}-byte words, "
                             f"SPRAM layer mask 0x{mask:x})")
        return BoardInfo(*fields[1:], load_words=words, addr_bytes=ab, data_bytes=db,
                         spram_layers=layers)

    # -- commands --------------------------------------------------------------------------
    def check_network(self, net):
        """Raise :class:`MlsnnError` unless the board was built from ``net``."""
        fp = network_fingerprint(net)
        if fp != self.info.fingerprint:
            raise MlsnnError(f"the board runs a different network (fingerprint "
                             f"{self.info.fingerprint:08x}, the IR gives {fp:08x})")

    def load_words(self, net):
        """The ``[(layer index, addr, data)]`` words :meth:`load_weights` sends for ``net``: the
        weights of the layers the descriptor names as SPRAM
        (:func:`hw.network.weight_load_words`)."""
        from hw.network import weight_load_words
        names = {net.layers[k].name: "spram" for k in self.info.spram_layers
                 if k < len(net.layers)}
        return weight_load_words(net, names) if names else []

    def load_weights(self, net_or_words, *, progress=None):
        """Write the SPRAM weights with ``W`` commands, every echo checked; then inferences
        are allowed.

        Parameters
        ----------
        net_or_words : golden.ir.Network or list
            The network the board was built from (checked by fingerprint; its words from
            :meth:`load_words`), or the words themselves, ``[(layer index, addr, data)]``.
        progress : callable or None
            ``progress(done, total)`` after every :attr:`LOAD_CHUNK` words and at the end.

        Raises
        ------
        MlsnnError
            A board without SPRAM layers, another network, a word count other than the
            descriptor's, a word for a layer not in SPRAM or wider than the protocol's fields,
            or a board that does not echo every word.
        """
        from golden.ir import Network
        info = self.info
        if not info.needs_weights:
            raise MlsnnError("the board keeps no weights in SPRAM (built with --weights rom): "
                             "there is nothing to load")
        if isinstance(net_or_words, Network):
            self.check_network(net_or_words)
            words = self.load_words(net_or_words)
        else:
            words = list(net_or_words)
        if len(words) != info.load_words:
            raise MlsnnError(f"the board expects {info.load_words} SPRAM words, not "
                             f"{len(words)}")
        ab, db = info.addr_bytes, info.data_bytes
        frames = []
        for k, addr, data in words:
            if k not in info.spram_layers:
                raise MlsnnError(f"a weight word for layer {k}, which the board does not keep in "
                                 f"SPRAM (its SPRAM layers: "
                                 f"{', '.join(map(str, info.spram_layers))})")
            if not (0 <= addr < 1 << 8 * ab and 0 <= data < 1 << 8 * db):
                raise MlsnnError(f"weight word ({k}, {addr}, {data}) does not fit the "
                                 f"board's {ab}-byte addresses and {db}-byte words")
            frames.append(bytes([OP_WLOAD, k]) + int(addr).to_bytes(ab, "little")
                          + int(data).to_bytes(db, "little"))
        self.weights_loaded = False
        for at in range(0, len(frames), self.LOAD_CHUNK):
            chunk = frames[at:at + self.LOAD_CHUNK]
            self._t.write(b"".join(chunk))
            for _ in chunk:
                self._expect(OP_WLOAD)
            if progress is not None:
                progress(at + len(chunk), len(frames))
        self.weights_loaded = True

    def _check_loaded(self):
        if not self.weights_loaded:
            raise MlsnnError(f"the board keeps the weights of layer(s) "
                             f"{', '.join(map(str, self.info.spram_layers))} in SPRAM and they "
                             f"were not loaded: Board.load_weights(net) first (mlsnn run "
                             f"--ir loads them)")

    def infer(self, pixels):
        """Load one input (flat, ``n_in`` values) and run it; return the prediction.

        Raises :class:`MlsnnError` while a board with SPRAM layers has not had its weights
        loaded (:attr:`weights_loaded`)."""
        self._check_loaded()
        x = np.asarray(pixels).reshape(-1)
        info = self.info
        if x.size != info.n_in:
            raise MlsnnError(f"an input must have {info.n_in} values for this board, not "
                             f"{x.size}")
        if x.dtype.kind not in "iub" or (x.size and (x.min() < 0 or
                                                      x.max() >= 1 << info.in_bits)):
            raise MlsnnError(f"inputs must be integers in [0, {(1 << info.in_bits) - 1}] "
                             f"(in_bits={info.in_bits})")
        data = x.astype("<u2").tobytes() if info.pixel_bytes == 2 else x.astype("u1").tobytes()
        self._command(OP_INFER, data)
        return struct.unpack("<H", self._t.read(2))[0]

    def _early_exit_command(self, frame, op):
        self._t.write(frame)
        got = self._t.read(1)[0]
        if got == op:
            return
        if got == OP_ERROR and self._t.read(1)[0] == op:
            raise MlsnnError(f"the board refused '{chr(op)}': it was built from a network "
                             f"without 'early_exit' (docs/early-exit.md), or the index is out "
                             f"of range")
        raise MlsnnError(f"protocol error: expected the echo {chr(op)!r} from the board, got "
                         f"0x{got:02x}")

    def set_alpha(self, alpha):
        """Write the early exit's thresholds alpha_1 .. alpha_{T-1} (``A`` commands, every
        echo checked); values above what a margin can reach (``potential_width + 1`` bits)
        are sent as the largest register value, which never exits."""
        T = self.info.timesteps
        alpha = list(alpha)
        if len(alpha) != T - 1:
            raise MlsnnError(f"alpha must have T - 1 = {T - 1} entries, not {len(alpha)}")
        bits = self.info.potential_width + 1
        nb = -(-bits // 8)
        for k, a in enumerate(alpha):
            if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 0:
                raise MlsnnError(f"alpha[{k}] must be a non-negative integer, not {a!r}")
            v = min(int(a), (1 << bits) - 1)
            self._early_exit_command(bytes([OP_ALPHA, k]) + v.to_bytes(nb, "little"),
                                     OP_ALPHA)

    def timesteps_used(self):
        """Timesteps the last inference used (``S``; boards with an early exit)."""
        self._early_exit_command(bytes([OP_STEPS]), OP_STEPS)
        return struct.unpack("<H", self._t.read(2))[0]

    def readout(self):
        """``(prediction, potentials)`` of the last inference."""
        self._command(OP_READOUT)
        pred = struct.unpack("<H", self._t.read(2))[0]
        nb, w = self.info.potential_bytes, self.info.potential_width
        raw = self._t.read(nb * self.info.n_classes)
        pots = []
        for j in range(self.info.n_classes):
            v = int.from_bytes(raw[j * nb:(j + 1) * nb], "little") & ((1 << w) - 1)
            pots.append(v - (1 << w) if v >> (w - 1) else v)
        return pred, np.array(pots, dtype=np.int64)

    def counter(self, layer, name):
        """One counter (``name`` from :data:`hw.board.COUNTER_NAMES`) of layer index ``layer``."""
        if name not in COUNTER_NAMES:
            raise MlsnnError(f"unknown counter {name!r}; counters are {', '.join(COUNTER_NAMES)}")
        if not 0 <= layer < self.info.n_layers:
            raise MlsnnError(f"layer index {layer} is out of range (the board has "
                             f"{self.info.n_layers} layers)")
        self._command(OP_COUNTER, struct.pack("<H", layer * CTR_STRIDE + COUNTER_NAMES.index(name)))
        return struct.unpack("<I", self._t.read(4))[0]

    def counters(self):
        """Every counter: ``{layer_index: {name: value}}``."""
        self._command(OP_COUNTERS)
        n, layers = self.info.counters_per_layer, self.info.n_layers
        vals = struct.unpack(f"<{layers * n}I", self._t.read(4 * layers * n))
        return {i: dict(zip(COUNTER_NAMES, vals[i * n:(i + 1) * n]))
                for i in range(self.info.n_layers)}

    def overflow(self):
        """Sticky overflow flag of every layer (list of bool, by layer index)."""
        self._command(OP_OVERFLOW)
        raw = int.from_bytes(self._t.read(self.info.overflow_bytes), "little")
        return [bool(raw >> i & 1) for i in range(self.info.n_layers)]

    def clear(self):
        """Clear every counter and overflow flag."""
        self._command(OP_CLEAR)

    def reset(self):
        """Send a break: the command engine and the core restart from reset."""
        self._t.send_break()

    def run(self, x):
        """Run a batch ``[B, ...]`` image by image (counters cleared before each image)."""
        self._check_loaded()
        x = np.asarray(x)
        if x.ndim < 1:
            raise MlsnnError("inputs must have a batch axis: [B, *input_shape]")
        B = x.shape[0]
        preds = np.zeros(B, np.int64)
        ro = np.zeros((B, self.info.n_classes), np.int64)
        ctr = {i: {k: np.zeros(B, np.int64) for k in COUNTER_NAMES}
               for i in range(self.info.n_layers)}
        ovf = np.zeros((B, self.info.n_layers), bool)
        for b in range(B):
            self.clear()
            p = self.infer(x[b])
            p2, ro[b] = self.readout()
            if p2 != p:
                raise MlsnnError(f"protocol error: the board reported prediction {p}, then {p2}")
            preds[b] = p
            for i, c in self.counters().items():
                for k, v in c.items():
                    ctr[i][k][b] = v
            ovf[b] = self.overflow()
        return BoardRun(predictions=preds, readout=ro, counters=ctr, overflow=ovf)
