"""Multi-level vs bit-serial vs binary rate coding at equal quantization levels (issue 15 §2).

One QCFS ANN (``golden.train.train_qcfs``, Q = 15, mlp on scikit-learn digits) converted three
ways, all with 16 output values per neuron and inference:

- multi-level: T = 1, N = 15 (``golden.convert.convert``);
- bit-serial: T = 4, N = 1, ``coding="bitserial"`` (``golden.bitserial.from_multilevel`` of the
  multi-level network: the same integers, MSB first; docs/bitserial.md);
- binary rate: T = 15, N = 1 (``golden.convert.convert``).

Per coding: test accuracy (golden model, whole test set), events, memory accesses and the
energy from the exact counters (``golden.energy.datta``: seed 003's Table 4 operations, the
45 nm SRAM model for memories), and the shifts (the RTL's ``shifts`` counter) and cycles per
inference measured on the RTL (Amaranth simulator, a few test images, every event, potential and
counter checked against golden), the cycles checked against ``golden.cycles.network_cycles``.

Run ``python -m experiments.bitserial`` (``--images K`` RTL images, ``--epochs``); writes
``experiments/results/bitserial.{json,md}``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from golden.bitserial import from_multilevel
from golden.convert import convert
from golden.cycles import network_cycles
from golden.energy.datta import network_energy
from golden.reference import run
from golden.train import train_qcfs

from .common import (ROOT, Progress, cache_dir, fmt, load_data, md_table, rtl_measure,
                     write_json)

RESULTS = os.path.join(ROOT, "experiments", "results")
Q = 15


def _qcfs_cached(cache, data, *, epochs, seed, log):
    path = os.path.join(cache, f"qcfs-mlp-Q{Q}-e{epochs}-s{seed}.pt")
    if os.path.exists(path):
        doc = torch.load(path, map_location="cpu", weights_only=False)
        log(f"loaded {os.path.basename(path)}")
        return doc["model"], doc["metrics"]
    model, _, metrics = train_qcfs(levels=Q, arch="mlp", epochs=epochs, seed=seed,
                                   dataset=data.name)
    torch.save({"model": model, "metrics": metrics}, path)
    log(f"trained the QCFS ANN (float test accuracy {metrics['test_accuracy']:.3f})")
    return model, metrics


def _row(name, net, data, x, rtl):
    res = run(net, x)
    acc = float(np.mean(res.predictions == data.y_test))
    spiking = [l.name for l in net.layers if not l.readout]
    tot = {k: 0.0 for k in ("ev_out", "ev_in", "w_rd", "p_rd", "p_wr", "b_rd", "syn_updates")}
    for l in net.layers:
        for k in tot:
            tot[k] += float(res.counters[l.name][k].mean())
    e = network_energy(net, res)
    return {
        "coding": name, "T": net.timesteps,
        "N": max(l.levels for l in net.layers if not l.readout),
        "accuracy": acc,
        "events": sum(float(res.counters[n]["ev_out"].mean()) for n in spiking),
        "input_events": float(res.counters[net.layers[0].name]["ev_in"].mean()),
        "syn_updates": tot["syn_updates"],
        "memory_accesses": tot["w_rd"] + tot["p_rd"] + tot["p_wr"] + tot["b_rd"],
        "w_rd": tot["w_rd"], "p_rd": tot["p_rd"], "p_wr": tot["p_wr"], "b_rd": tot["b_rd"],
        # measured by the RTL's shifts counter (counter 13), mean per image
        "shifts": float(sum(rtl["layers"][l.name]["shifts"] for l in net.layers)),
        "energy": e, "compute_nJ": e["compute_pj"] / 1e3, "memory_nJ": e["memory_pj"] / 1e3,
        "total_nJ": e["total_pj"] / 1e3,
        "rtl": {k: rtl[k] for k in ("status", "images", "cycles") if k in rtl},
    }


def run_experiment(*, epochs=20, seed=0, images=4, log=None):
    log = log or Progress("bitserial")
    cache = cache_dir("bitserial")
    data = load_data("digits")
    model, metrics = _qcfs_cached(cache, data, epochs=epochs, seed=seed, log=log)
    ml, doc_ml = convert(model, data, timesteps=1, levels=Q)
    binary, doc_bin = convert(model, data, timesteps=Q, levels=1)
    bs = from_multilevel(ml).replace(name="bitserial-T4")
    x = ml.check_inputs(data.x_test.reshape((-1,) + ml.input.shape))
    rows = []
    for name, net in (("multi-level", ml), ("bit-serial", bs), ("binary rate", binary)):
        log(f"{name}: golden on {len(x)} test images, RTL on {images}")
        rtl = rtl_measure(net, x[:images], cache=cache, log=log, seed=seed)
        if any("shifts" not in c for c in rtl.get("layers", {}).values()):
            # cached before the RTL counted shifts: measure again
            rtl = rtl_measure(net, x[:images], cache=cache, log=log, seed=seed, fresh=True)
        if rtl.get("status") != "ok":
            raise SystemExit(f"RTL {name}: {rtl.get('status')} {rtl.get('reason', '')}")
        model = float(network_cycles(net, x[:images]).cycles.mean())
        if model != rtl["cycles"]:
            raise SystemExit(f"{name}: the cycle model says {model} cycles, the RTL "
                             f"{rtl['cycles']}")
        rows.append(_row(name, net, data, x, rtl))
    same = bool(np.array_equal(run(ml, x).predictions, run(bs, x).predictions))
    return {"qcfs_ann_accuracy": metrics["test_accuracy"], "Q": Q, "epochs": epochs,
            "seed": seed, "n_test": int(len(x)), "rtl_images": images,
            "bitserial_equals_multilevel": same, "rows": rows}


def to_markdown(result):
    head = ["coding", "T", "N", "accuracy", "events", "input events", "syn. updates",
            "memory accesses", "shifts", "cycles (RTL)", "compute nJ", "memory nJ", "total nJ"]
    rows = [[r["coding"], r["T"], r["N"], fmt(r["accuracy"]), fmt(r["events"]),
             fmt(r["input_events"]), fmt(r["syn_updates"]), fmt(r["memory_accesses"]),
             fmt(r["shifts"]), fmt(r["rtl"]["cycles"]), fmt(r["compute_nJ"]),
             fmt(r["memory_nJ"]), fmt(r["total_nJ"])] for r in result["rows"]]
    return (f"QCFS ANN (Q = {result['Q']}) float test accuracy "
            f"{result['qcfs_ann_accuracy']:.3f}; golden on {result['n_test']} test images, "
            f"cycles on the RTL for {result['rtl_images']} (every event, potential and counter "
            f"equal to golden); bit-serial predictions equal multi-level: "
            f"{result['bitserial_equals_multilevel']}.\n\n" + md_table(head, rows) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m experiments.bitserial", description=__doc__)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", type=int, default=4)
    args = ap.parse_args(argv)
    result = run_experiment(epochs=args.epochs, seed=args.seed, images=args.images)
    os.makedirs(RESULTS, exist_ok=True)
    write_json(os.path.join(RESULTS, "bitserial.json"), result)
    md = to_markdown(result)
    with open(os.path.join(RESULTS, "bitserial.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
