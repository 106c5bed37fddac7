"""The spike avalanche on the RTL: per-layer events of SEW- vs Sparse-ResNet, measured by the
hardware's own counters (seed 000 §4.3–4.4, Fig. 3–4).

1. Random weights: a small ResNet (``sim.nets.small_resnet``: stem conv 3×3, three chained
   identity blocks of two convs 3×3 each, joins sum0..sum2, dense readout), T = 1,
   N ∈ {1, 2, 4, 8}, in three versions with the *same* conv and readout weights:

   * ``SEW``: SEW joins — the next layer receives the events of both paths;
   * ``Sparse``: every join a barrier neuron with N_b = N and θ_b = 1 (the inputs' scale: the
     barrier emits min(N, z_direct + z_residual) as one event);
   * ``Sparse-exact``: a barrier with θ_b = 1 and N_b = the largest possible sum, which
     emits z_direct + z_residual exactly: the same function as SEW (equal readout potentials,
     checked), only the events differ.

2. Trained (optional, ``--trained K``): the scikit-learn digits SEW and Sparse ResNets that
   ``python -m experiments.sew_vs_sparse`` caches under ``out/experiments/sew_vs_sparse/``
   (seed 0, T = 1), on the first K test images; skipped when the checkpoints are missing.

Every network runs through ``hw.network.NetworkTop`` in the Amaranth simulator and every event,
readout potential and counter is checked equal to the golden model (the script exits 1
otherwise). Numbers are means per image of the RTL counters: ``ev_out`` of every layer, the
readout's ``ev_in``, all events sent between cores, synaptic updates (``syn_updates``) and
the cycles with ``busy`` high.

Run: ``python benchmarks/bench_avalanche.py [--images B] [--trained K] [--md FILE]``.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from golden.fixtures import random_inputs  # noqa: E402
from golden.ir import Join  # noqa: E402
from golden.reference import run  # noqa: E402
from sim.amaranth_run import run_network  # noqa: E402
from sim.nets import as_barrier, small_resnet  # noqa: E402
from sim.scoreboard import compare  # noqa: E402

LEVELS = (1, 2, 4, 8)


def measure(net, x, *, seed=0):
    """RTL run checked against golden; per-image mean counters per layer, readout, cycles."""
    golden = run(net, x)
    t0 = time.monotonic()
    rtl = run_network(net, x, seed=seed)
    msgs = compare(net, golden, rtl, x)
    if msgs:
        raise SystemExit(f"bench_avalanche: {net.name}: RTL differs from golden: {msgs[0]}")
    mean = {l.name: {c: float(np.mean(v)) for c, v in rtl.counters[l.name].items()}
            for l in net.layers}
    return {"layers": mean, "readout": rtl.readout, "cycles": float(np.mean(rtl.cycles)),
            "seconds": time.monotonic() - t0}


def totals(net, m):
    ro = net.readout.name
    return {
        "events": sum(m["layers"][l.name]["ev_out"] for l in net.layers if not l.readout),
        "readout_in": m["layers"][ro]["ev_in"],
        "syn_updates": sum(m["layers"][l.name]["syn_updates"] for l in net.layers),
        "cycles": m["cycles"],
    }


def fmt(v):
    return f"{v:.0f}" if v >= 100 or float(v).is_integer() else f"{v:.1f}"


def table(headers, rows):
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join([":---"] * 2 + ["---:"] * (len(headers) - 2)) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def join_rows(net, m, label, N):
    """One row: per join 'direct + residual → out', then the readout's input."""
    cells = [str(N), label]
    for j in (l for l in net.layers if isinstance(l, Join)):
        d, r = (m["layers"][s]["ev_out"] for s in j.inputs)
        cells.append(f"{fmt(d)} + {fmt(r)} → **{fmt(m['layers'][j.name]['ev_out'])}**")
    cells.append(fmt(m["layers"][net.readout.name]["ev_in"]))
    return cells


def random_section(images, log):
    per_layer, per_join, summary = [], [], []
    names = None
    for N in LEVELS:
        sew = small_resnet(100 + N, join="sew", blocks=3, channels=4, size=6, levels=N,
                           timesteps=1, in_bits=4)
        x = random_inputs(sew, images, seed=N)
        nets = [("SEW", sew), ("Sparse", as_barrier(sew, lossless=False, levels=N)),
                ("Sparse-exact", as_barrier(sew))]
        res = {}
        for label, net in nets:
            res[label] = measure(net, x, seed=N)
            log(f"random N={N} {label}: {res[label]['seconds']:.0f}s")
        assert np.array_equal(res["SEW"]["readout"], res["Sparse-exact"]["readout"])
        names = [l.name for l in sew.layers]
        base = totals(sew, res["SEW"])
        for label, net in nets:
            m = res[label]
            t = totals(net, m)
            per_layer.append([str(N), label]
                             + [fmt(m["layers"][n]["ev_out"]) for n in names[:-1]]
                             + [fmt(m["layers"][names[-1]]["ev_in"])])
            per_join.append(join_rows(net, m, label, N))
            same = np.mean(np.argmax(m["readout"], 1) == np.argmax(res["SEW"]["readout"], 1))
            summary.append([str(N), label, fmt(t["events"]), fmt(t["readout_in"]),
                            fmt(t["syn_updates"]), fmt(t["cycles"]),
                            "-" if label == "SEW" else
                            f"{100 * (1 - t['events'] / base['events']):.0f} %",
                            f"{100 * same:.0f} %"])
    return names, per_layer, per_join, summary


def trained_section(k, log):
    try:
        from experiments import common
        from experiments.sew_vs_sparse import LABEL, MODEL
    except ImportError as e:
        log(f"trained networks skipped: {e}")
        return None
    cache = os.path.join(common.OUT, "sew_vs_sparse")
    data = common.load_data("digits")
    x = data.x_test[:k]
    rows, jrows = [], []
    for N in LEVELS:
        for arch in ("sew-resnet", "sparse-resnet"):
            params = dict(arch=arch, timesteps=1, levels=N, epochs=15, seed=0, lr=1e-2, **MODEL)
            prefix = f"{arch}-T1-N{N}-e15-s0-"
            cached = os.path.isdir(cache) and any(f.startswith(prefix) for f in os.listdir(cache))
            if not cached:
                log(f"trained {arch} N={N}: no cached checkpoint (run python -m "
                    f"experiments.sew_vs_sparse first); skipped")
                continue
            model, _ = common.train_cached(cache, data=data, **params)
            net = common.export_net(model, 8)
            m = measure(net, x)
            log(f"trained {LABEL[arch]} N={N}: {m['seconds']:.0f}s")
            t = totals(net, m)
            jrows.append(join_rows(net, m, LABEL[arch], N))
            rows.append([str(N), LABEL[arch], fmt(t["events"]), fmt(t["readout_in"]),
                         fmt(t["syn_updates"]), fmt(t["cycles"])])
    return rows, jrows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=3, help="random images per network")
    p.add_argument("--trained", type=int, default=0, metavar="K",
                   help="also measure the cached trained digits ResNets on K test images")
    p.add_argument("--md", help="also write the tables to this Markdown file")
    args = p.parse_args(argv)
    t0 = time.monotonic()

    def log(msg):
        print(f"[bench_avalanche {time.monotonic() - t0:5.0f}s] {msg}", file=sys.stderr,
              flush=True)

    names, per_layer, per_join, summary = random_section(args.images, log)
    out = [f"## Random weights: small ResNet, 3 chained identity blocks, T = 1, "
           f"{args.images} random images (means per image, RTL counters)", "",
           "Per join: events of the direct path + events of the residual path → events the "
           "join sends on (SEW: their sum, every event passed on; Sparse: the barrier's own), "
           "and the events entering the readout.", "",
           table(["N", "net"] + [f"{j}" for j in names if j.startswith("sum")] + ["→ readout"],
                 per_join), "",
           "Events sent by every layer (`ev_out`; last column: the readout's `ev_in`):", "",
           table(["N", "net"] + names[:-1] + [f"{names[-1]} (in)"], per_layer), "",
           "Totals (all events sent between cores, events into the readout, synaptic updates, "
           "cycles per image), the event reduction against SEW and the agreement of the "
           "predictions with SEW:", "",
           table(["N", "net", "events", "readout in", "syn. updates", "cycles",
                  "fewer events", "same prediction"], summary)]
    if args.trained:
        tr = trained_section(args.trained, log)
        if tr and tr[0]:
            rows, jrows = tr
            nj = max(len(r) for r in jrows) - 3
            out += ["", f"## Trained digits ResNets (experiments/sew_vs_sparse, seed 0, T = 1), "
                        f"first {args.trained} test images (means per image, RTL counters)", "",
                    table(["N", "net"] + [f"sum{i}" for i in range(nj)] + ["→ readout"], jrows),
                    "",
                    table(["N", "net", "events", "readout in", "syn. updates", "cycles"], rows)]
    text = "\n".join(out)
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text + "\n")
    log("done")


if __name__ == "__main__":
    main()
