"""Cycle model (golden/cycles.py) against the RTL: ~20 random networks, cycles per image.

For each network (dense, conv, pools, residual joins; random pixels per beat and lanes) the
model's cycles per inference are printed next to ``run_network(...).cycles`` from the Amaranth
simulator, with the relative error, whether every core's ``cycles`` counter matches too, the
fixed-point passes and the time each side took; then the max and mean relative error over all
images. Numbers only (tests/test_cycles.py holds the asserts)::

    .venv/bin/python benchmarks/bench_cycles.py [--networks 20] [--images 2] [--seed 0]
"""

import argparse
import time

import numpy as np

from golden.cycles import lanes_up_to, network_cycles
from golden.fixtures import random_inputs, random_network
from sim.amaranth_run import run_network


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=20)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    kinds = ["dense", "conv", "conv+pool", "residual"]
    errs, exact_layers, t_model, t_rtl = [], 0, 0.0, 0.0
    print(f"{'net':<22}{'T':>2}{'P':>3}{'L':>3}  {'model':>14}  {'rtl':>14}  {'err':>7}"
          f"  {'cores':>6}  {'passes':>6}  {'model s':>8}  {'rtl s':>7}")
    for k in range(args.networks):
        kind = kinds[k % len(kinds)]
        seed = int(rng.integers(1 << 16))
        net = random_network(seed, kind=kind.split("+")[0], pool=kind.endswith("+pool"))
        L = int(rng.choice([1, 2, 4, 8]))
        net = lanes_up_to(net, L)
        P = int(min(rng.choice([1, 2, 4, 8]), net.input.size))
        x = random_inputs(net, args.images, seed=seed)
        t0 = time.perf_counter()
        rep = network_cycles(net, x, pixels_per_beat=P)
        t1 = time.perf_counter()
        rtl = run_network(net, x, pixels_per_beat=P)
        t2 = time.perf_counter()
        t_model += t1 - t0
        t_rtl += t2 - t1
        err = np.abs(rep.cycles - rtl.cycles) / rtl.cycles
        errs += err.tolist()
        cores = all(np.array_equal(rep.layers[n], rtl.counters[n]["cycles"])
                    for n in rep.layers)
        exact_layers += cores
        name = f"{kind} {seed}"
        print(f"{name:<22}{net.timesteps:>2}{P:>3}{L:>3}  {str(rep.cycles.tolist()):>14}  "
              f"{str(rtl.cycles.tolist()):>14}  {err.max():>7.4f}  {str(cores):>6}  "
              f"{int(rep.passes.max()):>6}  {t1 - t0:>8.3f}  {t2 - t1:>7.1f}", flush=True)
    errs = np.array(errs)
    print(f"\n{len(errs)} images of {args.networks} networks: max relative error "
          f"{errs.max():.4f}, mean {errs.mean():.4f}, exact {int((errs == 0).sum())} of "
          f"{len(errs)}; every core counter exact in {exact_layers} of {args.networks} "
          f"networks; model {t_model:.2f} s, RTL simulation {t_rtl:.1f} s")


if __name__ == "__main__":
    main()
