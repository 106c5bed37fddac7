"""Synthesis benchmark: resources and Fmax of dense layer cores and of the digits MLP.

1. A dense layer core (hw.layer.LayerCore) of the digits MLP's hidden layer shape (64 inputs,
   64 neurons, random weights at full W_BITS range, T=1, 5-bit inputs) for N ∈ {1, 2, 4, 8},
   W_BITS ∈ {4, 8}, discharge ∈ {parallel, serial}, on iCE40 UP5K and ECP5-85F.
2. The digits MLP network (64 → 64 (N=4) → 10, T=1, W_BITS=8), trained and exported with
   golden.train / golden.export (or ``--ir DIR``), top and cores, on both targets, against the
   goals ≥ 50 MHz (iCE40 UP5K) and ≥ 150 MHz (ECP5-85F).

3. ``--mnist`` (instead of 1 and 2): an MNIST-shaped MLP (784 → 128 (N=4) → 10, T=1,
   W_BITS=8, 8-bit inputs, random weights, thresholds calibrated by golden.fixtures) on the
   iCE40 UP5K with fc0's weights in SPRAM (``weights={"fc0": "spram"}``: 4 SB_SPRAM256KA),
   the network top only (about 1 minute); docs/synthesis.md, "Networks of real size".

Every design goes through the pin wrapper (flows.synth.PinWrapper), so the resources are the
core's own and the Fmax is that of its logic. Prints Markdown tables (docs/synthesis.md holds a
copy). Usage::

    python benchmarks/bench_synth.py [--quick] [--ir DIR] [--json out.json] [--jobs 2]
    python benchmarks/bench_synth.py --mnist [--json out.json]

``--quick`` runs N ∈ {1, 4}, W_BITS = 8 only. Takes about 15-25 minutes on 2 cores in full.
"""

import argparse
import itertools
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from flows.synth import TARGETS, markdown_table, prepare, run_jobs  # noqa: E402
from golden import ir  # noqa: E402

GOALS = {"ice40-up5k": 50.0, "ecp5-85f": 150.0}


def dense_net(levels, w_bits, seed=0):
    """Input (64, 5-bit) → fc (64, N levels, W_BITS) → readout (10)."""
    rng = np.random.default_rng(seed)
    lim = (1 << (w_bits - 1)) - 1
    w0 = rng.integers(-lim, lim + 1, size=(64, 64))
    w1 = rng.integers(-lim, lim + 1, size=(64, 10))
    fc = ir.Dense(name="fc", inputs=("input",), threshold=4 * lim, levels=levels, weight=w0,
                  bias=rng.integers(-lim, lim + 1, size=64), w_bits=w_bits)
    ro = ir.Dense(name="readout", inputs=("fc",), threshold=1, levels=1, weight=w1,
                  bias=np.zeros(10, np.int64), w_bits=w_bits, readout=True)
    return ir.Network(input=ir.InputSpec(shape=(64,), in_bits=5), timesteps=1, layers=(fc, ro),
                      name=f"dense-N{levels}-W{w_bits}")


def mnist_mlp(seed=0):
    """784 → 128 (N=4) → 10, T=1, W_BITS=8, 8-bit inputs, random weights and biases,
    thresholds from golden.fixtures.calibrate_thresholds."""
    from golden.fixtures import calibrate_thresholds
    rng = np.random.default_rng(seed)
    fc0 = ir.Dense(name="fc0", inputs=("input",), threshold=1, levels=4,
                   weight=rng.integers(-127, 128, size=(784, 128)),
                   bias=rng.integers(-127, 128, size=128), w_bits=8)
    fc1 = ir.Dense(name="fc1", inputs=("fc0",), threshold=1, levels=1,
                   weight=rng.integers(-127, 128, size=(128, 10)),
                   bias=np.zeros(10, np.int64), w_bits=8, readout=True)
    net = ir.Network(input=ir.InputSpec(shape=(784,), in_bits=8), timesteps=1,
                     layers=(fc0, fc1), name="mnist-mlp-784-128-10")
    return calibrate_thresholds(net, rng)


def mnist(args):
    """The MNIST-shaped MLP with fc0 in SPRAM on the iCE40 UP5K, placed and routed."""
    from flows.synth import synthesize_network
    t0 = time.monotonic()
    net = mnist_mlp()
    rep = synthesize_network(net, "ice40-up5k", cores=False, weights={"fc0": "spram"},
                             progress=lambda m: print(f"[bench] {m}", file=sys.stderr,
                                                      flush=True))
    print(f"## MNIST-shaped MLP '{net.name}' (fc0 in SPRAM), iCE40 UP5K\n")
    print(markdown_table([rep.top], columns=("name", "target", "luts", "ffs", "carry", "brams",
                                             "sprams", "dsps", "fmax_mhz")), end="")
    lc = rep.top.utilization.get("ICESTORM_LC", {})
    print(f"\nlogic cells {lc.get('used')} of {lc.get('available')}; "
          f"({time.monotonic() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"mnist": rep.to_json(detail=True)}, f, indent=1)
    return 0


def digits_mlp(path=None):
    if path:
        return ir.load(path)
    from golden.export import export
    from golden.train import train
    model, metrics = train(arch="mlp", timesteps=1, levels=4, epochs=10, seed=0)
    net, _ = export(model, w_bits=8)
    print(f"[bench] trained the digits MLP: test accuracy {100 * metrics['test_accuracy']:.2f} %",
          file=sys.stderr)
    return net


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="N ∈ {1, 4}, W_BITS = 8 only")
    p.add_argument("--ir", help="the digits MLP IR (default: train and export it now)")
    p.add_argument("--json", help="also write every report to this JSON file")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel tool runs")
    p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated targets")
    p.add_argument("--skip-cores", action="store_true", help="only the digits MLP")
    p.add_argument("--mnist", action="store_true",
                   help="only the MNIST-shaped MLP (784-128-10, fc0 in SPRAM) on iCE40 UP5K")
    args = p.parse_args(argv)
    if args.mnist:
        return mnist(args)
    from hw.layer import LayerCore
    from hw.network import NetworkTop

    targets = args.targets.split(",")
    levels = (1, 4) if args.quick else (1, 2, 4, 8)
    wbits = (8,) if args.quick else (4, 8)
    t0 = time.monotonic()
    rows, out = [], {"cores": [], "digits": []}

    if not args.skip_cores:
        jobs, meta = [], []
        for tgt, n, w, dis in itertools.product(targets, levels, wbits, ("parallel", "serial")):
            net = dense_net(n, w)
            core = LayerCore.from_network(net, "fc", discharge=dis)
            jobs.append(prepare(core, name=f"fc N={n} W={w} {dis}", target=tgt, wrap=True))
            meta.append({"target": tgt, "levels": n, "w_bits": w, "discharge": dis})
        print(f"[bench] {len(jobs)} dense cores ...", file=sys.stderr, flush=True)
        reps = run_jobs(jobs, parallel=args.jobs)
        for m, r in zip(meta, reps):
            out["cores"].append({**m, **r.to_json(detail=False), "seconds": r.seconds})
        rows = reps

    net = digits_mlp(args.ir)
    djobs = []
    for tgt in targets:
        djobs.append(prepare(NetworkTop(net), name=f"digits MLP ({net.name})", target=tgt,
                             wrap=True))
        for layer in net.layers:
            djobs.append(prepare(LayerCore.from_network(net, layer.name),
                                 name=f"  core {layer.name}", target=tgt, wrap=True))
    print(f"[bench] digits MLP on {', '.join(targets)} ...", file=sys.stderr, flush=True)
    dreps = run_jobs(djobs, parallel=args.jobs)
    out["digits"] = [r.to_json() for r in dreps]

    if rows:
        print("## Dense layer core (64 inputs → 64 neurons), wrapped\n")
        cols = ("target", "levels", "w_bits", "discharge", "luts", "ffs", "carry", "brams",
                "dsps", "fmax_mhz")
        heads = ("target", "N", "W_BITS", "discharge", "LUT4", "FF", "carry", "BRAM", "DSP",
                 "Fmax (MHz)")
        print("| " + " | ".join(heads) + " |")
        print("|" + "|".join("---" if c in ("target", "discharge") else "---:" for c in cols) + "|")
        for d in out["cores"]:
            print("| " + " | ".join(f"{d[c]:.1f}" if isinstance(d[c], float) else str(d[c])
                                    for c in cols) + " |")
        print()
    shape = " → ".join([str(net.input.size)] + [str(net.info(l.name).n_out) for l in net.layers])
    print(f"## Digits MLP '{net.name}' ({shape}, T={net.timesteps}, "
          f"N={net.layers[0].levels}, W_BITS={net.layers[0].w_bits})\n")
    print(markdown_table(dreps), end="")
    print()
    for tgt in targets:
        top = next(r for r in dreps if r.target == tgt)
        ok = top.fmax_mhz is not None and top.fmax_mhz >= GOALS[tgt]
        print(f"- {tgt}: {top.fmax_mhz or 0:.1f} MHz against the goal of {GOALS[tgt]:g} MHz: "
              f"{'met' if ok else 'NOT met'}")
    print(f"\n({time.monotonic() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
