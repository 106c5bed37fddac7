# amaranth: UnusedElaboratable=no
"""Counted memory bank (hw/memory.py): reads, writes, counters, clear, transparency."""

import pytest
from amaranth.hdl import signed
from amaranth.sim import Simulator

from hw.memory import CountedMemory


def _run(dut, tb):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def test_init_read_write_and_counters():
    dut = CountedMemory(shape=signed(8), depth=5, init=[-3, 7, 0, 127, -128])
    seen = {}

    async def tb(ctx):
        # Synchronous read: data the cycle after the enable; held while the enable is low.
        for a, want in enumerate([-3, 7, 0, 127, -128]):
            ctx.set(dut.rd_addr, a)
            ctx.set(dut.rd_en, 1)
            await ctx.tick()
            ctx.set(dut.rd_en, 0)
            assert ctx.get(dut.rd_data) == want
        ctx.set(dut.rd_addr, 0)
        await ctx.tick().repeat(3)
        assert ctx.get(dut.rd_data) == -128          # held, and no read counted
        ctx.set(dut.wr_addr, 2)
        ctx.set(dut.wr_data, -77)
        ctx.set(dut.wr_en, 1)
        await ctx.tick()
        ctx.set(dut.wr_en, 0)
        ctx.set(dut.rd_addr, 2)
        ctx.set(dut.rd_en, 1)
        await ctx.tick()
        ctx.set(dut.rd_en, 0)
        assert ctx.get(dut.rd_data) == -77
        seen["lagging"] = (ctx.get(dut.reads), ctx.get(dut.writes))
        await ctx.tick()                             # counters count one cycle later
        seen["before"] = (ctx.get(dut.reads), ctx.get(dut.writes))
        ctx.set(dut.clear, 1)
        ctx.set(dut.rd_en, 1)                        # clear wins over a same-cycle access
        await ctx.tick()
        ctx.set(dut.clear, 0)
        ctx.set(dut.rd_en, 0)
        seen["after"] = (ctx.get(dut.reads), ctx.get(dut.writes))
        await ctx.tick()
        seen["later"] = (ctx.get(dut.reads), ctx.get(dut.writes))

    _run(dut, tb)
    assert seen["lagging"] == (5, 1)
    assert seen["before"] == (6, 1)
    assert seen["after"] == (0, 0)
    assert seen["later"] == (0, 0)                   # the read of the clear cycle is not counted


@pytest.mark.parametrize("transparent", [False, True])
def test_transparency(transparent):
    dut = CountedMemory(shape=signed(8), depth=2, init=[5, 6], transparent=transparent)
    got = []

    async def tb(ctx):
        ctx.set(dut.wr_addr, 1)
        ctx.set(dut.wr_data, 42)
        ctx.set(dut.wr_en, 1)
        ctx.set(dut.rd_addr, 1)
        ctx.set(dut.rd_en, 1)
        await ctx.tick()
        ctx.set(dut.wr_en, 0)
        ctx.set(dut.rd_en, 0)
        got.append(ctx.get(dut.rd_data))

    _run(dut, tb)
    assert got == [42 if transparent else 6]


def test_read_only_bank_has_no_write_port():
    dut = CountedMemory(shape=8, depth=1, init=[9], writable=False)
    assert "wr_en" not in dut.signature.members
    got = []

    async def tb(ctx):
        ctx.set(dut.rd_en, 1)
        await ctx.tick().repeat(3)
        ctx.set(dut.rd_en, 0)
        await ctx.tick()
        got.append((ctx.get(dut.rd_data), ctx.get(dut.reads), ctx.get(dut.writes)))

    _run(dut, tb)
    assert got == [(9, 3, 0)]


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(shape=8, depth=0), ValueError, "depth must be a positive integer, not 0"),
    (dict(shape=8, depth=2.0), TypeError, "depth must be a positive integer, not 2.0"),
    (dict(shape=8, depth=1, init=[1, 2]), ValueError, "init has 2 rows but depth is 1"),
    (dict(shape=signed(4), depth=1, init=[8]), ValueError,
     "init value 8 does not fit the row shape signed(4)"),
])
def test_validation(kwargs, exc, msg):
    with pytest.raises(exc) as e:
        CountedMemory(**kwargs)
    assert str(e.value) == msg
