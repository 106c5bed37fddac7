"""`mlsnn sweep`: cycles, area, Fmax, energy and accuracy over a grid of design parameters."""

import os
import sys
import time

from golden.errors import MlsnnError

NAME = "sweep"
HELP = ("sweep lanes, levels, timesteps, W_BITS, discharge and synapse: cycles, LUT/FF/BRAM, "
        "Fmax, energy, accuracy; Pareto plot")
DESCRIPTION = (
    "Measure every point of a grid of design parameters on an IR network (--ir, with --inputs) "
    "or a trained model (--model, re-exported per point; inputs: its test split or --inputs): "
    "cycles per inference (the cycle model, or the RTL), LUT/FF/BRAM/DSP and Fmax of the "
    "network top (yosys + nextpnr; --no-synth skips them), energy per inference (Lemaire's "
    "model on the golden counters) and, when the inputs file has labels 'y', the accuracy of "
    "the golden predictions. Grid parameters: lanes, fire_lanes, levels, timesteps, w_bits, "
    "discharge, synapse, pixels_per_beat, weights; --grid NAME=V1,V2 (repeat it, or join items "
    "with "
    "';'). Writes "
    "DIR/results.json, DIR/results.csv and DIR/pareto.png (µs per inference vs LUTs, colour = "
    "energy); every finished point is cached in DIR/points/, so a rerun (or a sweep after "
    "Ctrl-C) computes only the missing points. --jobs N runs on a local dask.distributed "
    "cluster, --scheduler on an existing one (docs/sweep.md). Example: mlsnn sweep --ir "
    "net/network.json --inputs net/inputs.npz --grid lanes=1,2,4 --grid levels=1,4 -o out/sweep")


def add_arguments(p):
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ir", metavar="NETWORK_JSON",
                     help="IR network (network.json or its directory)")
    src.add_argument("--model", metavar="MODEL_PT",
                     help="checkpoint of 'mlsnn train': every point is exported from it with "
                          "its levels, timesteps and w_bits (default 8)")
    p.add_argument("--inputs", metavar="X_NPZ",
                   help=".npz with array 'x' [B, *input_shape] and, for the accuracy, labels "
                        "'y' [B] (with --model: default its dataset's test split)")
    p.add_argument("--dataset", metavar="digits|mnist:DIR|PATH",
                   help="--model: take the inputs from this dataset's test split (default: "
                        "the one the model was trained on)")
    p.add_argument("--images", type=int, default=None, help="use only the first N images")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2[;...]",
                   help="values of one or more parameters (lanes, fire_lanes, levels, timesteps, "
                        "w_bits, discharge, synapse, pixels_per_beat, weights); repeat for more")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="results.json, results.csv, pareto.png and the point cache")
    p.add_argument("--no-synth", action="store_true",
                   help="no synthesis: no LUT/FF/BRAM/Fmax, time per inference at the nominal "
                        "clock (--freq or the target's)")
    p.add_argument("--target", default="ice40-up5k", metavar="TARGET",
                   help="synthesis target (default ice40-up5k)")
    p.add_argument("--freq", type=float, metavar="MHZ",
                   help="nextpnr clock goal in MHz, in (0, 1000] (default: the target's, 50 "
                        "on iCE40, 150 on ECP5); the clock of --no-synth")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    p.add_argument("--rtl-check", type=int, default=0, metavar="K",
                   help="also run the RTL (Amaranth simulator) on the first K points: its "
                        "cycles vs the cycle model, its results vs golden")
    p.add_argument("--jobs", type=int, default=1,
                   help="points in parallel on a local Dask cluster of N worker processes "
                        "(default 1: in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running Dask scheduler (tcp://host:8786) to run on")
    p.add_argument("--json", action="store_true", help="print results.json on stdout")


def _read_labels(path, n):
    """Labels ``y`` of an ``.npz`` inputs file (None when it has none), first ``n``."""
    import numpy as np
    if not path.endswith(".npz"):
        return None
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
        return data["y"][:n] if "y" in data.files else None


def _check(args):
    from flows.io import check_number, check_output_dir, check_seed
    from flows.synth import get_target
    if args.ir and not args.inputs:
        raise MlsnnError("--ir needs --inputs x.npz (array 'x' [B, *input_shape], labels 'y' "
                         "for the accuracy)")
    if args.dataset and not args.model:
        raise MlsnnError("--dataset applies to --model only (with --ir give --inputs)")
    if args.dataset and args.inputs:
        raise MlsnnError("give --dataset or --inputs, not both")
    if args.jobs < 1:
        raise MlsnnError(f"--jobs must be at least 1, not {args.jobs}")
    if args.rtl_check < 0:
        raise MlsnnError(f"--rtl-check must be at least 0, not {args.rtl_check}")
    if args.images is not None and args.images < 1:
        raise MlsnnError(f"--images must be at least 1, not {args.images}")
    get_target(args.target)
    check_number(args.freq, "--freq (MHz)", minimum=0, maximum=1000, min_open=True)
    check_seed(args.seed, bits=31)
    check_output_dir(args.output)


def build(args):
    """The :class:`flows.sweep.Sweep` of the command line (every check done)."""
    from flows import sweep as sw
    from flows.io import load_inputs, load_network
    _check(args)
    grid = sw.parse_grid(args.grid)
    options = sw.SweepOptions(synth=not args.no_synth, target=args.target, freq_mhz=args.freq,
                              seed=args.seed)
    n = args.images
    if args.ir:
        source = load_network(args.ir)
        meta = {"source": {"ir": os.path.abspath(args.ir)}}
        x, y = load_inputs(args.inputs, source)[:n], _read_labels(args.inputs, n)
    else:
        source = sw.ModelSource(args.model)
        meta = {"source": {"model": os.path.abspath(args.model)}}
        if args.inputs:
            x, y = load_inputs(args.inputs)[:n], _read_labels(args.inputs, n)
        else:
            x, y = source.test_split(args.dataset)
            x, y = x[:n], y[:n]
    if args.inputs:
        meta["source"]["inputs"] = os.path.abspath(args.inputs)
    return sw.Sweep(source, grid, x, y, options=options, rtl_check=args.rtl_check, meta=meta)


class _Progress:
    """``[3/12] lanes=2 levels=4: 412 cycles, 1,830 LUT, 48.1 MHz, 1.2 µJ`` on stderr."""

    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self, k, total, row):
        from flows.sweep import format_row
        how = "cached" if row["cached"] else f"{row['seconds']:.1f} s"
        print(f"[{k}/{total}] {row['point']}: {format_row(row)} ({how})", file=sys.stderr,
              flush=True)


def run(args):
    from flows.sweep import format_energy
    sweep = build(args)
    os.makedirs(args.output, exist_ok=True)
    rows = sweep.run(args.output, jobs=args.jobs, scheduler=args.scheduler,
                     progress=_Progress())
    cached = sum(r["cached"] for r in rows)
    errors = [r for r in rows if r["status"] != "ok"]
    if args.json:
        with open(os.path.join(args.output, "results.json")) as f:
            sys.stdout.write(f.read())
        return 1 if errors else 0
    heads = ("point", "cycles", "LUT", "FF", "BRAM", "Fmax", "µs", "energy", "accuracy", "")
    table = []
    for r in rows:
        ok = r["status"] == "ok"

        def cell(key, fmt="{}"):
            return "-" if not ok or r.get(key) is None else fmt.format(r[key])
        table.append((r["point"], cell("cycles", "{:,.1f}"), cell("luts", "{:,}"),
                      cell("ffs", "{:,}"), cell("brams"), cell("fmax_mhz", "{:.1f}"),
                      cell("time_us", "{:.3g}"), format_energy(r["energy_nj"]) if ok else "-",
                      cell("accuracy", "{:.1%}"),
                      "pareto" if r.get("pareto") else ("" if ok else "error")))
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(heads)]
    for line in (heads, *table):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(line, widths))).rstrip())
    print(f"{len(rows)} points ({cached} cached, {len(rows) - cached} computed, {len(errors)} "
          f"failed); results in {os.path.join(args.output, 'results.json')}, results.csv, "
          f"pareto.png")
    checked = [r for r in rows if r.get("rtl_status") is not None]
    if checked:
        same = sum(bool(r["rtl_cycles_equal"]) for r in checked)
        match = sum(r["rtl_status"] == "match" for r in checked)
        print(f"RTL check on {len(checked)} point(s): cycles ({rows[0]['cycles_source']}) equal "
              f"the RTL's on {same}, RTL matches golden on {match}")
    for r in errors:
        print(f"mlsnn sweep: point {r['point']}: {r['message']}", file=sys.stderr)
    return 1 if errors else 0
