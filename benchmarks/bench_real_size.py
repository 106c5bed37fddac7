"""Networks of real size on the ECP5-85F: an MNIST-shaped MLP and a CIFAR-shaped CNN with pooling.

1. ``mnist-mlp``: 784 (8-bit pixels) → 128 (N = 4) → 10, T = 1, W_BITS = 8, random weights.
2. ``cifar-cnn``: 3×32×32 (8-bit) → conv 3×3 p1 (8 ch, N = 4) → maxpool 2 → conv 3×3 p1
   (16 ch, N = 4) → maxpool 2 → dense readout (10), T = 1, W_BITS = 8, random weights with
   thresholds calibrated on random images (so that every layer fires at a useful rate).

Random weights are enough for hardware figures: resources and Fmax do not depend on the
values, and bit-exactness is checked on them. For each network this prints the fit report
(``mlsnn fit``), simulates ``--images`` random images on the RTL (``--sim``: Verilator by
default, the fastest; ``amaranth`` or ``icarus`` also work) and compares them with the golden
model bit for bit, then places and routes the network top on the ECP5-85F (yosys + nextpnr
through :func:`flows.synth.synthesize_network`) and prints LUT4, FF, DP16KD, Fmax and the cycles
per image. Usage::

    python benchmarks/bench_real_size.py [--nets mnist-mlp,cifar-cnn] [--images 3]
                                         [--sim verilator] [--no-synth] [--json out.json]

Takes about 10-20 minutes on 2 cores in full (nextpnr dominates).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from golden import ir  # noqa: E402
from golden.fixtures import calibrate_thresholds, random_inputs  # noqa: E402
from golden.pooling import MaxPool2d  # noqa: E402
from golden.reference import run  # noqa: E402


def _w(rng, shape, bits=8):
    lim = (1 << (bits - 1)) - 1
    w = rng.integers(-lim, lim + 1, size=shape)
    w[rng.random(shape) < 0.5] = 0
    return w.astype(np.int64)


def mnist_mlp(seed=0):
    rng = np.random.default_rng(seed)
    fc0 = ir.Dense(name="fc0", inputs=("input",), threshold=1, levels=4,
                   weight=_w(rng, (784, 128)), bias=np.zeros(128, np.int64), w_bits=8)
    out = ir.Dense(name="fc1", inputs=("fc0",), threshold=1, levels=1,
                   weight=_w(rng, (128, 10)), bias=np.zeros(10, np.int64), w_bits=8, readout=True)
    net = ir.Network(input=ir.InputSpec(shape=(784,), in_bits=8), timesteps=1,
                     layers=(fc0, out), name="mnist-mlp")
    return calibrate_thresholds(net, rng)


def cifar_cnn(seed=0):
    rng = np.random.default_rng(seed)
    c1 = ir.Conv2d(name="conv1", inputs=("input",), threshold=1, levels=4,
                   weight=_w(rng, (3, 3, 3, 8)), bias=np.zeros(8, np.int64), padding=1)
    p1 = MaxPool2d(name="pool1", inputs=("conv1",), kernel=2)
    c2 = ir.Conv2d(name="conv2", inputs=("pool1",), threshold=1, levels=4,
                   weight=_w(rng, (8, 3, 3, 16)), bias=np.zeros(16, np.int64), padding=1)
    p2 = MaxPool2d(name="pool2", inputs=("conv2",), kernel=2)
    out = ir.Dense(name="fc", inputs=("pool2",), threshold=1, levels=1,
                   weight=_w(rng, (16 * 8 * 8, 10)), bias=np.zeros(10, np.int64), readout=True)
    net = ir.Network(input=ir.InputSpec(shape=(3, 32, 32), in_bits=8), timesteps=1,
                     layers=(c1, p1, c2, p2, out), name="cifar-cnn")
    return calibrate_thresholds(net, rng)


NETS = {"mnist-mlp": mnist_mlp, "cifar-cnn": cifar_cnn}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--sim", default="verilator", choices=["verilator", "icarus", "amaranth"])
    ap.add_argument("--target", default="ecp5-85f")
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from flows.fit import fit_report
    from sim.scoreboard import compare
    rows = []
    for name in args.nets.split(","):
        net = NETS[name]()
        row = {"network": name, "neurons": sum(net.info(l.name).n_out for l in net.layers),
               "weights": sum(int(l.weight.size) for l in net.layers if "weight" in l.arrays)}
        rep = fit_report(net, args.target)
        print(rep.table())
        row["fits"] = rep.fits
        x = random_inputs(net, args.images, seed=1, density=0.5)
        golden = run(net, x)
        t0 = time.time()
        if args.sim == "amaranth":
            from sim.amaranth_run import run_network
            rtl = run_network(net, x, seed=1)
        else:
            from sim.cocotb_run import run_network_cocotb
            import tempfile
            with tempfile.TemporaryDirectory(dir="/work" if os.path.isdir("/work") else None) \
                    as d:
                rtl = run_network_cocotb(net, x, build_dir=d, seed=1, simulator=args.sim)
        msgs = compare(net, golden, rtl)
        row["sim"] = args.sim
        row["bit_exact"] = not msgs
        row["sim_seconds"] = round(time.time() - t0, 1)
        row["cycles_per_image"] = [int(c) for c in rtl.cycles]
        row["syn_updates_per_image"] = [int(sum(golden.counters[l.name]["syn_updates"][b]
                                                for l in net.layers))
                                        for b in range(args.images)]
        print(f"{name}: {args.images} images on {args.sim}: "
              f"{'bit-exact' if not msgs else 'MISMATCH: ' + msgs[0]} "
              f"({row['sim_seconds']} s); cycles/image {row['cycles_per_image']}", flush=True)
        if not args.no_synth and rep.fits:
            from flows.synth import synthesize_network
            t0 = time.time()
            r = synthesize_network(net, args.target, cores=False, progress=print).top
            row.update(lut4=r.luts, ff=r.ffs, bram=r.brams, dsp=r.dsps,
                       fmax_mhz=None if r.fmax_mhz is None else round(r.fmax_mhz, 1),
                       synth_seconds=round(time.time() - t0))
            print(f"{name} on {args.target}: {r.luts} LUT4, {r.ffs} FF, {r.brams} BRAM, "
                  f"{r.dsps} DSP, {row['fmax_mhz']} MHz ({row['synth_seconds']} s)", flush=True)
        rows.append(row)
    print(json.dumps(rows, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
