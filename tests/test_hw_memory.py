# amaranth: UnusedElaboratable=no
"""Counted memory bank (hw/memory.py): reads, writes, counters, clear, transparency."""

import pytest
from amaranth.hdl import Shape, signed, unsigned
from amaranth.sim import Simulator

from hw.memory import CountedMemory, MemorySpec, columns, split_columns


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


@pytest.mark.parametrize("shape, max_width, transparent", [
    (unsigned(40), 18, True), (unsigned(40), 18, False), (signed(12), 5, True),
    (unsigned(36), 18, False), (unsigned(18), 18, True)])
def test_columns_behave_like_one_memory(shape, max_width, transparent):
    """A bank built as bit columns (``max_width``) reads, writes, forwards and counts exactly
    like the one-memory bank, cycle by cycle, under random traffic."""
    import random

    from amaranth.hdl import Module

    depth = 9
    w = Shape.cast(shape).width
    rng = random.Random(w * 31 + max_width)
    lo = -(1 << (w - 1)) if Shape.cast(shape).signed else 0
    hi = (1 << (w - 1)) - 1 if Shape.cast(shape).signed else (1 << w) - 1
    init = [rng.randint(lo, hi) for _ in range(depth)]
    one = CountedMemory(shape=shape, depth=depth, init=init, transparent=transparent)
    cols = CountedMemory(shape=shape, depth=depth, init=init, transparent=transparent,
                         max_width=max_width)
    assert columns(w, max_width) == [(b, min(max_width, w - b)) for b in range(0, w, max_width)]
    m = Module()
    m.submodules.one, m.submodules.cols = one, cols
    seen = []

    async def tb(ctx):
        for cycle in range(300):
            values = dict(rd_addr=rng.randrange(depth), rd_en=rng.random() < 0.6,
                          wr_addr=rng.randrange(depth), wr_en=rng.random() < 0.4,
                          wr_data=rng.randint(lo, hi), clear=cycle == 150)
            for dut in (one, cols):
                for k, v in values.items():
                    ctx.set(getattr(dut, k), v)
            await ctx.tick()
            got = [(ctx.get(d.rd_data), ctx.get(d.reads), ctx.get(d.writes)) for d in (one, cols)]
            assert got[0] == got[1], (cycle, got)
            seen.append(got[0])

    _run(m, tb)
    assert len({s[0] for s in seen}) > 5            # the traffic did read varied data
    assert seen[-1][1] > 0 and seen[-1][2] > 0


def test_columns_of_a_spec():
    spec = MemorySpec("wmem", 256, 40, True, "weights")
    assert split_columns(spec, 18) == [MemorySpec("wmem[0:18]", 256, 18, True, "weights"),
                                       MemorySpec("wmem[18:36]", 256, 18, True, "weights"),
                                       MemorySpec("wmem[36:40]", 256, 4, True, "weights")]
    assert split_columns(spec, 40) == [spec]
    with pytest.raises(ValueError, match="max_width must be a positive integer"):
        CountedMemory(shape=unsigned(8), depth=2, max_width=0)


@pytest.mark.parametrize("shape, transparent", [(signed(12), True), (signed(12), False),
                                                (unsigned(40), False)])
def test_live_row_behaves_like_the_memory(shape, transparent):
    """A one-row bank built as a register (``live``) reads, writes, forwards and counts like
    the memory, cycle by cycle, and ``live`` is the row as written up to the previous cycle."""
    import random

    from amaranth.hdl import Module

    w = Shape.cast(shape).width
    rng = random.Random(w * 7 + transparent)
    lo = -(1 << (w - 1)) if Shape.cast(shape).signed else 0
    hi = (1 << (w - 1)) - 1 if Shape.cast(shape).signed else (1 << w) - 1
    init = [rng.randint(lo, hi)]
    mem = CountedMemory(shape=shape, depth=1, init=init, transparent=transparent)
    reg = CountedMemory(shape=shape, depth=1, init=init, transparent=transparent, live=True)
    assert "live" in reg.signature.members and "live" not in mem.signature.members
    m = Module()
    m.submodules.mem, m.submodules.reg = mem, reg
    seen = []

    async def tb(ctx):
        row = init[0]
        for cycle in range(300):
            values = dict(rd_addr=0, rd_en=rng.random() < 0.6, wr_addr=0,
                          wr_en=rng.random() < 0.4, wr_data=rng.randint(lo, hi),
                          clear=cycle == 150)
            assert ctx.get(reg.live) == row, cycle
            for dut in (mem, reg):
                for k, v in values.items():
                    ctx.set(getattr(dut, k), v)
            await ctx.tick()
            if values["wr_en"]:
                row = values["wr_data"]
            got = [(ctx.get(d.rd_data), ctx.get(d.reads), ctx.get(d.writes)) for d in (mem, reg)]
            assert got[0] == got[1], (cycle, got)
            seen.append(got[0])

    _run(m, tb)
    assert len({s[0] for s in seen}) > 5
    assert seen[-1][1] > 0 and seen[-1][2] > 0


@pytest.mark.parametrize("kwargs", [dict(depth=2), dict(depth=1, writable=False),
                                    dict(depth=1, block=True)])
def test_live_needs_one_writable_row_in_logic(kwargs):
    with pytest.raises(ValueError, match=r"^live needs a writable bank of one row in logic"):
        CountedMemory(shape=8, live=True, **kwargs)


def test_one_row_rom_is_its_row_at_all_times():
    """A read-only bank of one row in logic presents the row from reset on (a constant) and
    counts its reads like any bank; with ``block`` it keeps the memory's read register."""
    rom = CountedMemory(shape=signed(6), depth=1, init=[-7], writable=False)
    blk = CountedMemory(shape=signed(6), depth=1, init=[-7], writable=False, block=True)
    from amaranth.hdl import Module
    m = Module()
    m.submodules.rom, m.submodules.blk = rom, blk
    got = []

    async def tb(ctx):
        got.append((ctx.get(rom.rd_data), ctx.get(blk.rd_data)))
        for dut in (rom, blk):
            ctx.set(dut.rd_en, 1)
        await ctx.tick().repeat(2)
        for dut in (rom, blk):
            ctx.set(dut.rd_en, 0)
        await ctx.tick()
        got.append((ctx.get(rom.rd_data), ctx.get(blk.rd_data), ctx.get(rom.reads),
                    ctx.get(blk.reads)))

    _run(m, tb)
    assert got == [(-7, 0), (-7, -7, 2, 2)]
