"""ANN-to-SNN conversion on digits: uniform levels vs AdaFire vs AdaFire + SSC (seed 004).

For a ReLU MLP and a small ReLU CNN trained on scikit-learn digits (float ANN, Adam, fixed
seed), :func:`golden.convert.convert` (layer-wise calibration, docs/convert.md) produces at T
timesteps:

- **uniform** SNNs with the same N in every spiking layer, N ∈ {1, 2, 3, 4, 8};
- **AdaFire** SNNs (per-layer N ∈ {1, 2, 3, 4, 6, 8} by the KL sensitivity and the Pareto search
  of Eq. 11) under the energy budget of the uniform SNN with N = 2, 3, 4, so that each AdaFire row
  can be compared with the uniform row of the same energy;
- **AdaFire + SSC** (threshold ratios ρ ∈ {1, 1.5, 2, 3}, Eq. 15 with the seed's default
  S_target) on top of each AdaFire result.

Per SNN: the ANN's and the integer golden SNN's test accuracy, the energy per inference (Lemaire
model on the exact golden counters, hardware FIFO depth, on the 256 first calibration images:
what the search prices) and the sensitivity (KL, calibration set). The per-layer sensitivities
S_i(N) of the AdaFire search are recorded to check seed 004's observation that early layers
need fewer levels.

Run from the repository root::

    python -m experiments.conversion            # ~2.5 min

Outputs (``--out``, default ``experiments/results``): ``conversion.json`` and ``conversion.md``.
"""

from __future__ import annotations

if __package__ in (None, ""):          # run as a file: make the repository importable
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    __package__ = "experiments"

import argparse
import os
import sys

import torch
from torch import nn

from experiments import common
from experiments.common import fmt, md_table, text_table

NAME = "conversion"
UNIFORM = (1, 2, 3, 4, 8)
#: AdaFire runs at the energy of the uniform SNN with these N (its base levels too).
BUDGETS = (2, 3, 4)
CHOICES = (1, 2, 3, 4, 6, 8)
RHOS = (1.0, 1.5, 2.0, 3.0)


def build_ann(arch):
    """The float ReLU networks of the experiment (digits, 1×8×8 inputs)."""
    if arch == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),
                             nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    if arch == "cnn":
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.AvgPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                             nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10))
    raise ValueError(f"unknown arch {arch!r}")


def train_ann(model, data, *, epochs, seed, lr=1e-2):
    torch.manual_seed(seed)
    x = torch.tensor(data.x_train, dtype=torch.float32) * data.input_scale
    y = torch.tensor(data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            b = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _row(arch, method, doc, step, search_log=None):
    return {"arch": arch, "method": method, "levels": step["levels"], "rho": step["rho"],
            "ann_accuracy": doc["ann_accuracy"], "snn_accuracy": step["snn_accuracy"],
            "energy_nJ": step["energy_nJ"], "sensitivity": step["sensitivity"],
            "search": search_log or []}


def run_experiment(*, archs=("mlp", "cnn"), timesteps=2, uniform=UNIFORM, budgets=BUDGETS,
                   choices=CHOICES, rhos=RHOS, epochs=20, seed=0, calib_samples=1024,
                   energy_samples=256, log=None):
    """Train, convert, measure; return the JSON-ready results."""
    from flows.commands.energy import _hw_fifo_depth
    from golden.convert import convert
    from golden.datasets import load_dataset

    log = log or common.Progress(NAME)
    data = load_dataset("digits")
    kw = dict(timesteps=timesteps, calib_samples=calib_samples, energy_samples=energy_samples,
              fifo_depth=_hw_fifo_depth())
    rows, sensitivities = [], {}
    for arch in archs:
        log(f"{arch}: training the ANN ({epochs} epochs)")
        torch.manual_seed(seed)                 # the initial weights too
        model = train_ann(build_ann(arch), data, epochs=epochs, seed=seed)
        energy = {}
        for n in uniform:
            _, doc = convert(model, data, levels=n, **kw)
            rows.append(_row(arch, "uniform", doc, doc["steps"][0]))
            energy[n] = doc["energy_nJ"]
            log(f"{arch} uniform N={n}: SNN {100 * doc['snn_accuracy']:.2f} %, "
                f"{energy[n]:.4g} nJ")
        for n in budgets:
            lines = []
            _, doc = convert(model, data, levels=n, adafire_budget=energy[n],
                             level_choices=choices, ssc_rhos=rhos, log=lines.append, **kw)
            for step, method in zip(doc["steps"][1:], ("AdaFire", "AdaFire + SSC")):
                rows.append(_row(arch, f"{method} @ E(N={n})", doc, step, lines))
                log(f"{arch} {method} @ E(N={n}): N={step['levels']} rho={step['rho']} "
                    f"SNN {100 * step['snn_accuracy']:.2f} %, {step['energy_nJ']:.4g} nJ")
            sensitivities.setdefault(arch, {})[n] = _sensitivity_table(lines)
    return {"timesteps": timesteps, "epochs": epochs, "seed": seed,
            "calib_samples": calib_samples, "energy_samples": energy_samples,
            "test_images": int(len(data.y_test)), "rows": rows, "sensitivities": sensitivities}


def _sensitivity_table(lines):
    """``{layer: {N: S}}`` from the AdaFire search lines (``  fc1    N=2    S=...``)."""
    out = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[1].startswith("N=") and parts[2].startswith("S="):
            out.setdefault(parts[0], {})[int(parts[1][2:])] = float(parts[2][2:])
    return out


HEADERS = ("arch", "method", "N per layer", "ρ per layer", "ANN %", "SNN %", "E nJ/inf", "KL")


def _cells(r):
    return (r["arch"], r["method"], ",".join(map(str, r["levels"])),
            ",".join(f"{v:g}" for v in r["rho"]), f"{100 * r['ann_accuracy']:.2f}",
            f"{100 * r['snn_accuracy']:.2f}", fmt(r["energy_nJ"]), f"{r['sensitivity']:.3g}")


def to_markdown(result):
    out = [md_table(HEADERS, [_cells(r) for r in result["rows"]]), ""]
    for arch, per_base in result["sensitivities"].items():
        for base, table in per_base.items():
            choices = sorted({k for v in table.values() for k in v})
            out += [f"Sensitivity S_i(N) (KL, Eq. 9) of {arch}, other layers at N={base}:", "",
                    md_table(["layer"] + [f"N={c}" for c in choices],
                             [[name] + [f"{t.get(c, float('nan')):.3g}" for c in choices]
                              for name, t in table.items()]), ""]
            break           # one base per arch is enough for the observation
    return "\n".join(out)


def write_outputs(result, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, NAME)
    common.write_json(base + ".json", result)
    with open(base + ".md", "w") as f:
        f.write(to_markdown(result) + "\n")
    return {"json": base + ".json", "md": base + ".md"}


def main(argv=None):
    p = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default="mlp,cnn")
    p.add_argument("--timesteps", type=int, default=2)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(common.ROOT, "experiments", "results"))
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run_experiment(archs=tuple(a.strip() for a in args.archs.split(",")),
                            timesteps=args.timesteps, epochs=args.epochs, seed=args.seed)
    files = write_outputs(result, args.out)
    print(text_table(HEADERS, [_cells(r) for r in result["rows"]]))
    print(f"\nwritten: {', '.join(files.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
