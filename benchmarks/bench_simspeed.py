"""Simulation speed of the three RTL simulators side by side: Amaranth's simulator, Icarus
Verilog and Verilator (both under the cocotb bench), on the demo network and its test images.

For each simulator: the build seconds (Icarus: iverilog; Verilator: verilator + the C++ build,
first with no cached run-time library, then a rebuild of the same design, which the build cache
skips), the simulation seconds, images/s and simulated clock cycles/s (the cocotb numbers include
the bench's start-up in the simulator), and the check that every image matches the golden model
bit for bit. Verilator is measured at verilated.mk's default ``-Os`` and at ``-O0`` (what the
tests use). Numbers only, no timed asserts.

The network is the demo's (``out/demo/net``, written by ``mlsnn demo``); when it is missing it is
trained and exported the way ``flows/demo.py`` does (cached in ``out/demo`` for the demo), and if
that fails a random dense network is used instead (said in the output).

Run: ``python benchmarks/bench_simspeed.py [--images N]``.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from golden import fixtures, ir  # noqa: E402
from golden.errors import MlsnnError  # noqa: E402
from golden.reference import run  # noqa: E402
from sim.scoreboard import compare  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")


def demo_network():
    """(net, x, description): the demo network and its test images."""
    out = os.path.join(ROOT, "out", "demo")
    path = os.path.join(out, "net")
    if not os.path.exists(os.path.join(path, "network.json")):
        print(f"[bench] {path} is missing: training and exporting the demo network "
              f"(flows/demo.py's train and export stages)", flush=True)
        from flows.demo import Demo
        demo = Demo(out, echo=lambda msg: print(msg, flush=True))
        if demo.train() is None or demo.export() is None:
            net = fixtures.random_network(64, kind="dense", in_shape=(64,), depth=1,
                                          max_neurons=32)
            return (net, fixtures.random_inputs(net, 100, seed=1),
                    "training failed: a random dense network instead "
                    "(golden.fixtures.random_network)")
    net = ir.load(path)
    x = np.load(os.path.join(path, "inputs.npz"))["x"]
    shape = "-".join(str(v) for v in [int(np.prod(net.input.shape))]
                     + [net.info(l.name).n_out for l in net.layers if l.kind != "join"])
    return net, x, f"demo network {shape} (out/demo/net), T={net.timesteps}"


def row(label, n, build, sim_s, cycles, ok):
    build_txt = "      -" if build is None else f"{build:7.1f}"
    print(f"{label:<32} {build_txt} {sim_s:8.1f} {n / sim_s:9.2f} {cycles / sim_s:10.0f}  "
          f"{'yes' if ok else 'NO'}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=100, help="test images (default 100)")
    args = p.parse_args()
    net, x, what = demo_network()
    x = x[:args.images]
    n = x.shape[0]
    golden = run(net, x)
    print(f"== simulation speed: {what}, {n} images, no gaps or stalls")
    print(f"{'simulator':<32} {'build s':>7} {'sim s':>8} {'images/s':>9} {'cycles/s':>10}  "
          f"bit-exact")

    from sim.amaranth_run import run_network
    t0 = time.monotonic()
    am = run_network(net, x)
    t_am = time.monotonic() - t0
    row("amaranth (in-process)", n, None, t_am, am.extra["sim_cycles"],
        compare(net, golden, am, x) == [])

    from sim.cocotb_run import run_network_cocotb
    runs = [("icarus", None)]
    if shutil.which("g++"):
        runs += [("verilator", "-Os"), ("verilator", "-O0")]
    # A fresh Verilator cache: the first build also compiles the run-time library.
    os.environ["MLSNN_VERILATOR_CACHE"] = tempfile.mkdtemp(prefix="bench-verilator-")
    for simulator, opt in runs:
        label = simulator if opt is None else f"{simulator} {opt}"
        with tempfile.TemporaryDirectory() as d:
            try:
                first = run_network_cocotb(net, x, simulator=simulator, build_dir=d,
                                           verilator_opt=opt, golden=golden)
            except MlsnnError as e:     # a missing simulator: say so, go on with the others
                print(f"{label:<32} not run: {e}", flush=True)
                continue
            row(label + " (first build)", n, first.extra["build_s"], first.extra["test_s"],
                first.extra["sim_cycles"], compare(net, golden, first, x) == [])
            again = run_network_cocotb(net, x, simulator=simulator, build_dir=d,
                                       verilator_opt=opt, golden=golden)
            row(label + " (rerun, cached)", n, again.extra["build_s"], again.extra["test_s"],
                again.extra["sim_cycles"], compare(net, golden, again, x) == [])
        if simulator == "verilator" and opt == "-Os":
            # Another design with the run-time library already compiled: the usual cost.
            net2 = fixtures.random_network(64, kind="dense", in_shape=tuple(net.input.shape),
                                           depth=1, max_neurons=32)
            x2 = fixtures.random_inputs(net2, 1, seed=1)
            with tempfile.TemporaryDirectory() as d:
                other = run_network_cocotb(net2, x2, simulator=simulator, build_dir=d,
                                           verilator_opt=opt)
            print(f"{label + ' (other design, shared lib)':<32} {other.extra['build_s']:7.1f}  "
                  f"(build only: a random dense network, the run-time library already "
                  f"compiled)", flush=True)
    shutil.rmtree(os.environ.pop("MLSNN_VERILATOR_CACHE"), ignore_errors=True)


if __name__ == "__main__":
    main()
