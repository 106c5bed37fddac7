"""Simulation speed: clock cycles per second of the Amaranth simulator and of Icarus Verilog
(cocotb bench) on the same network top and inputs (numbers only, no timed asserts).

Both runs drive the same stimulus protocol (no gaps, no stalls), so they simulate the same
number of busy cycles; the check that both match the golden model is included.

Run: ``python benchmarks/bench_simspeed.py``.
"""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from golden.ir import random_inputs, random_network  # noqa: E402
from golden.reference import run  # noqa: E402
from sim.amaranth_run import run_network  # noqa: E402
from sim.scoreboard import compare  # noqa: E402


def bench(label, net, batch):
    x = random_inputs(net, batch, seed=1)
    golden = run(net, x)
    t0 = time.monotonic()
    am = run_network(net, x)
    t_am = time.monotonic() - t0
    assert compare(net, golden, am) == []
    n_am = am.extra["sim_cycles"]
    line = (f"{label:<34} busy cycles {int(am.cycles.sum()):>7}  amaranth {n_am:>7} cycles "
            f"in {t_am:6.1f} s = {n_am / t_am:8.0f} cycles/s")
    if shutil.which("iverilog"):
        from sim.icarus_run import run_network_icarus
        with tempfile.TemporaryDirectory() as d:
            ic = run_network_icarus(net, x, build_dir=d)
        assert compare(net, golden, ic) == []
        assert int(ic.cycles.sum()) == int(am.cycles.sum())
        n_ic = ic.extra["sim_cycles"]
        line += (f" | icarus {n_ic:>7} cycles in {ic.extra['test_s']:5.1f} s = "
                 f"{n_ic / ic.extra['test_s']:8.0f} cycles/s (+{ic.extra['build_s']:.1f} s "
                 f"compile)")
    else:
        line += " | icarus: iverilog not found"
    print(line, flush=True)


def main():
    print("== simulation speed, same network and inputs (cycles/s, whole testbench included)")
    bench("dense 3 layers (random seed 4)", random_network(4, kind="dense", max_neurons=16), 8)
    bench("conv + readout (random seed 3)", random_network(3, kind="conv", timesteps=4,
                                                            max_neurons=48), 8)
    bench("conv x2 + readout (seed 5, T=2)", random_network(5, kind="conv", depth=2, timesteps=2,
                                                             max_neurons=48), 4)


if __name__ == "__main__":
    main()
