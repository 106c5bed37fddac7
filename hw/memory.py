"""Counted memory bank: a synchronous-read SRAM that counts every read and every write.

SPEC §4–§5: every layer core keeps its weights, biases and potentials in local memories, and the
energy model needs the exact number of accesses, so the memory itself counts them.

:class:`SpramBank` holds a layer's weights in iCE40 UP5K single-port SPRAM (``SB_SPRAM256KA``,
16K x 16 each) when block RAM cannot: yosys never infers SPRAM for an Amaranth memory (it
always carries an init), so the bank instantiates the cells itself, and because SPRAM cannot be
initialised at configuration the weights are written at run time through its load port.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH

__all__ = ["CountedMemory", "MemorySpec", "SpramBank", "spram_geometry", "pack_words", "columns",
           "split_columns",
           "SPRAM_DEPTH", "SPRAM_WIDTH"]


@dataclass(frozen=True)
class MemorySpec:
    """One memory of a core, as the core builds it (``Core.memories(net, name)``), for the
    device-fit report (``mlsnn fit``) and the synthesis figures.

    ``name`` the core's name for it (``"wmem"``); ``depth`` words of ``width`` bits; ``rom``:
    never written by the core (initialised from the IR at configuration); ``what``: what it
    holds (``"weights"``, ``"biases"``, ``"potentials"``, ``"fan-out table"``, ...);
    ``spram``: built from ``SB_SPRAM256KA`` cells (:class:`SpramBank`: ``depth`` packed words
    of ``width`` bits, loaded at run time), not left to yosys' memory mapping; ``block``: in
    block RAM whatever yosys' cost model prefers (``CountedMemory(block=True)``).
    """

    name: str
    depth: int
    width: int
    rom: bool
    what: str
    spram: bool = False
    block: bool = False

    @property
    def bits(self):
        return self.depth * self.width


def columns(width, max_width=None):
    """The bit columns ``[(low bit, width), ...]`` of a ``width``-bit word built as memories of
    at most ``max_width`` bits (:class:`CountedMemory`)."""
    step = width if max_width is None or width <= max_width else max_width
    return [(lo, min(step, width - lo)) for lo in range(0, width, step)]


def split_columns(spec, max_width):
    """The :class:`MemorySpec` of each column memory of ``spec`` (:func:`columns`; the spec
    itself when it is not wider than ``max_width``)."""
    cols = columns(spec.width, max_width)
    if len(cols) == 1:
        return [spec]
    return [MemorySpec(f"{spec.name}[{lo}:{lo + w}]", spec.depth, w, spec.rom, spec.what,
                       spec.spram, spec.block) for lo, w in cols]


def _check_pos_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


class CountedMemory(wiring.Component):
    """A memory bank (``lib.memory.Memory``) with one synchronous read port, an optional write
    port, and 32-bit access counters.

    Timing: a read issued with ``rd_en`` in cycle c presents ``rd_data`` in cycle c+1 and holds
    it while ``rd_en`` is low. A read-only bank of one row in logic (not ``block``) presents
    its row at all times (a constant, which the multiplexers behind it fold). With
    ``transparent=True`` a read of the row being written in the same cycle returns the new data
    (write-to-read forwarding). The counters count an access of
    cycle c in cycle c+1 (their enables are registered, so that the memory's enables, which may
    come from logic late in the cycle, do not also drive two 32-bit adders): they are exact one
    cycle after the last access. Counters wrap at 2**32.

    Parameters
    ----------
    shape : shape-like
        Shape of a row (e.g. ``signed(8)``).
    depth : int
        Number of rows (>= 1).
    init : sequence of int
        Initial contents (the IR's integer arrays); missing rows are zero.
    writable : bool
        Whether the bank has a write port (weights and biases are read-only).
    transparent : bool
        Read port transparent for the write port.
    max_width : int or None
        Build rows wider than this as several memories of at most ``max_width`` bits side by
        side (bit columns, lowest first), with the same address, enables and transparency, so
        the behaviour is the same. ECP5 block RAM ports are at most 18 bits wide; a wider
        memory of up to 512 words goes to a DP16KD in its 36-bit pseudo dual-port mode, whose
        lower data half yosys leaves without an output register that :mod:`flows.outreg` could
        use, and its 5.6 ns clock-to-out then limits the clock. ``None``: one memory.
    block : bool
        Put the memory in block RAM (yosys' ``rom_style`` / ``ram_style`` attribute
        ``"block"``) even where its cost model would build it in logic or LUT RAM (a shallow,
        wide ROM); the same behaviour, another netlist.
    live : bool
        A writable bank of one row, built as a register whose value is also an output,
        :attr:`live` (the row as written up to the previous cycle, no read needed): an
        accumulator adds to it directly (:class:`hw.stages.Accumulate` ``live``); the ports
        and counters behave as without it.

    Members
    -------
    rd_addr, rd_en : In
        Read address and enable.
    rd_data : Out(shape)
        Read data, one cycle after ``rd_en``.
    wr_addr, wr_en, wr_data : In
        Write port (only when ``writable``).
    live : Out(shape)
        Only with ``live``: the row.
    clear : In(1)
        Clears both counters (an access in the same cycle is not counted).
    reads, writes : Out(32)
        Accesses so far.

    Raises
    ------
    TypeError, ValueError
        On a non-integer or non-positive ``depth`` or an ``init`` longer than ``depth``.
    """

    def __init__(self, *, shape, depth, init=(), writable=True, transparent=False,
                 max_width=None, block=False, live=False):
        self._shape = Shape.cast(shape)
        self._block = bool(block)
        self._live = bool(live)
        if self._live and (depth != 1 or not writable or block):
            raise ValueError("live needs a writable bank of one row in logic (depth=1, "
                             "writable, not block)")
        if max_width is not None:
            _check_pos_int("max_width", max_width)
        self._max_width = max_width
        self._depth = _check_pos_int("depth", depth)
        init = [int(v) for v in init]
        if len(init) > depth:
            raise ValueError(f"init has {len(init)} rows but depth is {depth}")
        lo, hi = self._shape_range()
        for v in init:
            if not lo <= v <= hi:
                raise ValueError(f"init value {v} does not fit the row shape {self._shape!r}")
        self._init = init
        self._writable = bool(writable)
        self._transparent = bool(transparent) and self._writable
        aw = max(0, (depth - 1).bit_length())
        members = {
            "rd_addr": In(aw),
            "rd_en": In(1),
            "rd_data": Out(self._shape),
            "clear": In(1),
            "reads": Out(COUNTER_WIDTH),
            "writes": Out(COUNTER_WIDTH),
        }
        if self._writable:
            members.update({"wr_addr": In(aw), "wr_en": In(1), "wr_data": In(self._shape)})
        if self._live:
            members["live"] = Out(self._shape)
        super().__init__(members)

    def _shape_range(self):
        w = self._shape.width
        if self._shape.signed:
            return -(1 << (w - 1)), (1 << (w - 1)) - 1
        return 0, (1 << w) - 1

    @property
    def depth(self):
        return self._depth

    @property
    def writable(self):
        return self._writable

    def elaborate(self, platform):
        m = Module()
        cols = columns(self._shape.width, self._max_width)
        attrs = ({"ram_style" if self._writable else "rom_style": "block"} if self._block
                 else None)
        if self._depth == 1 and not self._writable and not self._block:
            m.d.comb += self.rd_data.eq(self._init[0] if self._init else 0)
            mems = []
        elif self._live:
            # one row: a register, read like the memory (the data one cycle after rd_en, held)
            row = Signal(self._shape, init=self._init[0] if self._init else 0)
            rd = Signal(self._shape)
            m.d.comb += [self.live.eq(row), self.rd_data.eq(rd)]
            with m.If(self.wr_en):
                m.d.sync += row.eq(self.wr_data)
            with m.If(self.rd_en):
                m.d.sync += rd.eq(Mux(self.wr_en, self.wr_data, row) if self._transparent
                                  else row)
            mems = []
        elif len(cols) == 1:
            m.submodules.mem = mem = Memory(shape=self._shape, depth=self._depth,
                                            init=self._init, attrs=attrs)
            mems = [mem]
        else:
            mask = (1 << self._shape.width) - 1
            mems = []
            for k, (lo, w) in enumerate(cols):
                init = [((v & mask) >> lo) & ((1 << w) - 1) for v in self._init]
                m.submodules[f"mem{k}"] = mem = Memory(shape=unsigned(w), depth=self._depth,
                                                       init=init, attrs=attrs)
                mems.append(mem)
        rd_bits = []
        for mem, (lo, w) in zip(mems, cols):
            wp = mem.write_port() if self._writable else None
            rp = mem.read_port(transparent_for=(wp,) if self._transparent else ())
            m.d.comb += [rp.addr.eq(self.rd_addr), rp.en.eq(self.rd_en)]
            rd_bits.append(rp.data)
            if wp is not None:
                data = self.wr_data if len(mems) == 1 else self.wr_data[lo:lo + w]
                m.d.comb += [wp.addr.eq(self.wr_addr), wp.en.eq(self.wr_en), wp.data.eq(data)]
        if mems:
            m.d.comb += self.rd_data.eq(rd_bits[0] if len(mems) == 1 else Cat(*rd_bits))
        reads = Signal(COUNTER_WIDTH)
        rd_seen = Signal()          # a read happened in the previous cycle
        m.d.comb += self.reads.eq(reads)
        m.d.sync += rd_seen.eq(self.rd_en & ~self.clear)
        with m.If(self.clear):
            m.d.sync += reads.eq(0)
        with m.Elif(rd_seen):
            m.d.sync += reads.eq(reads + 1)
        writes = Signal(COUNTER_WIDTH)
        m.d.comb += self.writes.eq(writes)
        if self._writable:
            wr_seen = Signal()
            m.d.sync += wr_seen.eq(self.wr_en & ~self.clear)
            with m.If(self.clear):
                m.d.sync += writes.eq(0)
            with m.Elif(wr_seen):
                m.d.sync += writes.eq(writes + 1)
        return m


#: Words and bits of one ``SB_SPRAM256KA`` (iCE40 SPRAM Usage Guide, FPGA-TN-02022).
SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16


def spram_geometry(width, depth):
    """How :class:`SpramBank` packs ``depth`` weights of ``width`` bits into SPRAM:
    ``(pack, slot, lanes, words, banks)``.

    ``pack`` weights share one 16-bit word, each in a ``slot`` of ``16 // pack`` bits (4 for
    widths 1..4, 8 for 5..8, 16 for 9..16; slots are nibbles or bytes so that MASKWREN could
    write one alone); wider weights take ``lanes = ceil(width / 16)`` cells side by side.
    ``words = ceil(depth / pack)`` words of ``16 * lanes`` bits, in ``banks = ceil(words /
    16384)`` rows of cells: ``banks * lanes`` cells in all (for 8-bit weights
    ``ceil(depth * 8 / 2**18)``, the bits over the cell's 256 kbit).
    """
    width = _check_pos_int("width", width)
    depth = _check_pos_int("depth", depth)
    pack = 4 if width <= 4 else 2 if width <= 8 else 1
    slot = SPRAM_WIDTH // pack
    lanes = -(-width // SPRAM_WIDTH)
    words = -(-depth // pack)
    banks = -(-words // SPRAM_DEPTH)
    return pack, slot, lanes, words, banks


def pack_words(values, width):
    """The load words of a :class:`SpramBank` holding ``values`` (signed integers of ``width``
    bits, in address order): ``[word, ...]`` in word-address order, unsigned ``16 * lanes``
    bits each; weight ``a`` sits in slot ``a % pack`` (bits ``slot * (a % pack)`` upward, two's
    complement, unused bits 0) of word ``a // pack``."""
    values = [int(v) for v in values]
    pack, slot, lanes, words, _ = spram_geometry(width, max(1, len(values)))
    mask = (1 << width) - 1
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    out = [0] * words
    for a, v in enumerate(values):
        if not lo <= v <= hi:
            raise ValueError(f"weight {v} does not fit {width} signed bits")
        out[a // pack] |= (v & mask) << (slot * (a % pack))
    return out


class SpramBank(wiring.Component):
    """Weights in single-port RAM: ``SB_SPRAM256KA`` cells (``primitive=True``) or, for
    simulation, one ``lib.memory.Memory`` per cell with the cell's behaviour, behind the same
    address, enable and select logic; a read port like :class:`CountedMemory`'s and a word
    load port.

    Packing (:func:`spram_geometry`): ``pack`` weights per 16-bit word (two 8-bit weights,
    four 4-bit ones), weight ``a`` in slot ``a % pack`` of word ``a // pack``; word ``w`` lives
    in cell row ``w >> 14`` at address ``w & 0x3fff``. A read enables only the cell row that
    holds the word (CHIPSELECT), registers the row and the slot, and selects them from the
    cells' outputs: the other rows hold their output (the cell keeps DATAOUT while not
    selected), so the data stay valid while ``rd_en`` is low, as in a block RAM.

    Timing: as :class:`CountedMemory` (read in cycle c, ``rd_data`` in c+1, held while
    ``rd_en`` is low; counters exact one cycle after the last access); a write takes one cycle.
    After a write, ``rd_data`` is undefined until the next read (the cell drives X; the model
    holds it): a reader must not write between a read and the use of its data. ``rd_en`` and
    ``wr_en`` must not be high together: the write wins and the read is neither done nor
    counted.

    Parameters
    ----------
    width : int
        Bits of a weight (signed).
    depth : int
        Number of weights.
    primitive : bool
        Instantiate ``SB_SPRAM256KA`` (synthesis for iCE40 UltraPlus); else the simulation
        model. Contents start at zero in the model and undefined in the cells.

    Members
    -------
    rd_addr, rd_en : In
        Weight address and read enable.
    rd_data : Out(signed(width))
    wr_addr : In(range(words))
        Word address of a load.
    wr_data : In(16 * lanes)
        The packed word (:func:`pack_words`).
    wr_en : In(1)
    clear : In(1)
        Clears both counters (an access in the same cycle is not counted).
    reads, writes : Out(32)
        Weight reads, word writes.
    """

    def __init__(self, *, width, depth, primitive=False):
        self._width = _check_pos_int("width", width)
        self._depth = _check_pos_int("depth", depth)
        self._primitive = bool(primitive)
        self.pack, self.slot, self.lanes, self.words, self.banks = spram_geometry(width, depth)
        aw = max(0, (depth - 1).bit_length())
        super().__init__({
            "rd_addr": In(aw),
            "rd_en": In(1),
            "rd_data": Out(Shape(width, signed=True)),
            "wr_addr": In(range(self.words)),
            "wr_data": In(SPRAM_WIDTH * self.lanes),
            "wr_en": In(1),
            "clear": In(1),
            "reads": Out(COUNTER_WIDTH),
            "writes": Out(COUNTER_WIDTH),
        })

    @property
    def depth(self):
        return self._depth

    @property
    def cells(self):
        """``SB_SPRAM256KA`` cells: ``banks * lanes``."""
        return self.banks * self.lanes

    def _cell(self, m, name, *, addr, din, wren, cs, dout, words):
        if self._primitive:
            m.submodules[name] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=addr, i_DATAIN=din, i_MASKWREN=Const(0b1111, 4), i_WREN=wren,
                i_CHIPSELECT=cs, i_CLOCK=ClockSignal(), i_STANDBY=Const(0, 1),
                i_SLEEP=Const(0, 1), i_POWEROFF=Const(1, 1), o_DATAOUT=dout)
            return
        # The cell's behaviour (yosys' cells_sim.v): with CHIPSELECT, a write or a read of
        # ADDRESS; without, DATAOUT holds.
        m.submodules[name] = mem = Memory(shape=SPRAM_WIDTH, depth=words, init=[])
        wp = mem.write_port()
        rp = mem.read_port()
        m.d.comb += [wp.addr.eq(addr), wp.data.eq(din), wp.en.eq(cs & wren),
                     rp.addr.eq(addr), rp.en.eq(cs & ~wren), dout.eq(rp.data)]

    def elaborate(self, platform):
        m = Module()
        pack, slot, lanes, banks = self.pack, self.slot, self.lanes, self.banks
        sb = (pack - 1).bit_length()
        rd_word = self.rd_addr[sb:]
        rd = Signal()
        m.d.comb += rd.eq(self.rd_en & ~self.wr_en)
        word = Signal(range(self.words))
        m.d.comb += word.eq(Mux(self.wr_en, self.wr_addr, rd_word))
        bank = word[14:] if banks > 1 else Const(0, 1)
        r_bank = Signal(range(banks))
        r_slot = Signal(range(pack))
        with m.If(rd):
            m.d.sync += r_bank.eq(bank)
            if pack > 1:
                m.d.sync += r_slot.eq(self.rd_addr[:sb])
        addr = Signal(14)
        m.d.comb += addr.eq(word[:14])
        rows = []
        for b in range(banks):
            cs = Signal(name=f"cs_{b}")
            m.d.comb += cs.eq((rd | self.wr_en) & (bank == b))
            words = min(SPRAM_DEPTH, self.words - b * SPRAM_DEPTH)
            douts = []
            for lane in range(lanes):
                dout = Signal(SPRAM_WIDTH, name=f"dout_{b}_{lane}")
                self._cell(m, f"spram_{b}_{lane}", addr=addr, din=self.wr_data.word_select(
                    lane, SPRAM_WIDTH), wren=self.wr_en, cs=cs, dout=dout, words=words)
                douts.append(dout)
            rows.append(Cat(*douts))
        row = Signal(SPRAM_WIDTH * lanes)
        if banks == 1:
            m.d.comb += row.eq(rows[0])
        else:
            with m.Switch(r_bank):
                for b, r in enumerate(rows):
                    with m.Case(b):
                        m.d.comb += row.eq(r)
        if pack > 1:
            with m.Switch(r_slot):
                for s in range(pack):
                    with m.Case(s):
                        m.d.comb += self.rd_data.eq(row[s * slot:s * slot + self._width])
        else:
            m.d.comb += self.rd_data.eq(row[:self._width])

        for name, cond in (("reads", rd), ("writes", self.wr_en)):
            ctr = Signal(COUNTER_WIDTH, name=f"ctr_{name}")
            seen = Signal(name=f"{name}_seen")
            m.d.comb += getattr(self, name).eq(ctr)
            m.d.sync += seen.eq(cond & ~self.clear)
            with m.If(self.clear):
                m.d.sync += ctr.eq(0)
            with m.Elif(seen):
                m.d.sync += ctr.eq(ctr + 1)
        return m
