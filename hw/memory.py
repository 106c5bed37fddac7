"""Counted memory bank: a synchronous-read SRAM that counts every read and every write.

SPEC §4–§5: every layer core keeps its weights, biases and potentials in local memories, and the
energy model needs the exact number of accesses, so the memory itself counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH

__all__ = ["CountedMemory", "MemorySpec"]


@dataclass(frozen=True)
class MemorySpec:
    """One memory of a core, as the core builds it (``Core.memories(net, name)``), for the
    device-fit report (``mlsnn fit``) and the synthesis figures.

    ``name`` the core's name for it (``"wmem"``); ``depth`` words of ``width`` bits; ``rom``:
    never written by the core (initialised from the IR at configuration); ``what``: what it
    holds (``"weights"``, ``"biases"``, ``"potentials"``, ``"fan-out table"``, ...).
    """

    name: str
    depth: int
    width: int
    rom: bool
    what: str

    @property
    def bits(self):
        return self.depth * self.width


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
    it while ``rd_en`` is low. With ``transparent=True`` a read of the row being written in the
    same cycle returns the new data (write-to-read forwarding). The counters count an access of
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

    Members
    -------
    rd_addr, rd_en : In
        Read address and enable.
    rd_data : Out(shape)
        Read data, one cycle after ``rd_en``.
    wr_addr, wr_en, wr_data : In
        Write port (only when ``writable``).
    clear : In(1)
        Clears both counters (an access in the same cycle is not counted).
    reads, writes : Out(32)
        Accesses so far.

    Raises
    ------
    TypeError, ValueError
        On a non-integer or non-positive ``depth`` or an ``init`` longer than ``depth``.
    """

    def __init__(self, *, shape, depth, init=(), writable=True, transparent=False):
        self._shape = Shape.cast(shape)
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
        m.submodules.mem = mem = Memory(shape=self._shape, depth=self._depth, init=self._init)
        wp = mem.write_port() if self._writable else None
        rp = mem.read_port(transparent_for=(wp,) if self._transparent else ())
        m.d.comb += [
            rp.addr.eq(self.rd_addr),
            rp.en.eq(self.rd_en),
            self.rd_data.eq(rp.data),
        ]
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
        if wp is not None:
            m.d.comb += [
                wp.addr.eq(self.wr_addr),
                wp.en.eq(self.wr_en),
                wp.data.eq(self.wr_data),
            ]
            wr_seen = Signal()
            m.d.sync += wr_seen.eq(self.wr_en & ~self.clear)
            with m.If(self.clear):
                m.d.sync += writes.eq(0)
            with m.Elif(wr_seen):
                m.d.sync += writes.eq(writes + 1)
        return m
