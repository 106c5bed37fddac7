"""`mlsnn import`: a NIR graph (model.nir) → IR, with the quantization error and the agreement
of the float NIR graph with the integer golden model."""

import json
import os
import sys

import numpy as np

from golden.errors import MlsnnError

NAME = "import"
HELP = "NIR graph (model.nir) -> IR (network.json + .npz); prints the quantization error"
DESCRIPTION = ("Map a feed-forward NIR graph (Input, Affine/Linear/Conv2d -> IF or LIF, "
               "several edges into a node = a SEW join, an IF fed by two streams = a barrier, "
               "SumPool2d/AvgPool2d -> IF, Flatten, and a readout: the last synapse before "
               "Output, I or a non-leaky LI) onto the integer IR, quantizing float weights and "
               "thresholds as 'mlsnn export' does. NIR's IF fires on v > threshold with a hard "
               "reset: the integer threshold is floor(threshold*Q) + 1 and the layer gets "
               "reset 'hard'. A LIF with a finite tau becomes a leaky layer: beta = 1 - dt/tau "
               "(forward Euler, --dt) rounded to the nearest 1 - 2^-k (leak k). Prints per "
               "layer the weight and threshold quantization errors, the beta asked and obtained "
               "and, with --inputs, how often the NIR graph run in float (T steps) predicts "
               "what the integer golden model predicts. See docs/import.md. "
               "Example: mlsnn import model.nir -o net --timesteps 2 --inputs x.npz")


def add_arguments(p):
    p.add_argument("model", metavar="model.nir", help="the NIR file (nir.write)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--timesteps", "-T", type=int, metavar="T",
                   help="timesteps per inference (default: the file's mlsnn_timesteps; NIR "
                        "itself has no T)")
    p.add_argument("--levels", type=int, metavar="N",
                   help="levels N of every IF layer (default: the file's, else 1: binary)")
    p.add_argument("--w-bits", type=int, default=8, help="signed weight width (default 8)")
    p.add_argument("--in-bits", type=int, metavar="B",
                   help="width of an input pixel (default: the file's, else 8)")
    p.add_argument("--input-scale", type=float, metavar="S",
                   help="float value the NIR graph receives for one integer input unit "
                        "(default: the file's, else 1.0)")
    p.add_argument("--reset", choices=("hard", "soft"),
                   help="reset of every IF layer (default: NIR's hard reset; 'soft' subtracts "
                        "the threshold, what snnTorch's reset_mechanism='subtract' meant)")
    p.add_argument("--dt", type=float, metavar="DT",
                   help="step length a LIF's tau is read with, beta = 1 - DT/tau (default: the "
                        "file's mlsnn_dt, else 1e-4, what snnTorch's export_to_nir writes with)")
    p.add_argument("--inputs", metavar="x.npz",
                   help="integer inputs (array x, optional labels y): compare the float NIR "
                        "graph with the integer golden model")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _labels(path, n):
    with open(path, "rb") as f:
        try:
            with np.load(f, allow_pickle=False) as z:
                if "y" not in getattr(z, "files", ()):
                    return None
                y = np.asarray(z["y"]).reshape(-1)
        except (ValueError, OSError, AttributeError):
            return None
    if len(y) != n:
        raise MlsnnError(f"{path}: {len(y)} labels y for {n} inputs x")
    return y


def import_file(path, out_dir, *, timesteps=None, levels=None, w_bits=8, in_bits=None,
                input_scale=None, reset=None, inputs=None, dt=None):
    """Import, write DIR/network.json + .npz, compare on ``inputs``; return the summary."""
    from flows.io import check_output_dir, load_inputs
    from golden import ir, nir_io

    check_output_dir(out_dir)
    graph = nir_io.read(path)
    net, report = nir_io.from_nir(graph, timesteps=timesteps, levels=levels, w_bits=w_bits,
                                  in_bits=in_bits, input_scale=input_scale, reset=reset,
                                  name=os.path.splitext(os.path.basename(path))[0], dt=dt)
    doc = {"network": ir.save(net, out_dir), "timesteps": net.timesteps,
           "input_unit": report.input_unit, "dt": report.dt,
           "layers": [dict(name=l.name, potential_width=net.info(l.name).width,
                           reset=getattr(l, "reset", None), levels=getattr(l, "levels", None),
                           v0=getattr(l, "v0", None), **report[l.name]) for l in net.layers]}
    if inputs is not None:
        x = load_inputs(inputs)
        if x.ndim >= 2 and x[0].size == net.input.size:
            x = x.reshape((x.shape[0],) + net.input.shape)
        x = net.check_inputs(x)
        cmp = nir_io.agreement(graph, net, x, report.input_unit, reset=reset, dt=dt)
        y = _labels(inputs, len(x))
        if y is not None:
            cmp["float_accuracy"] = float((np.array(cmp["float_predictions"]) == y).mean())
            cmp["golden_accuracy"] = float((np.array(cmp["golden_predictions"]) == y).mean())
        doc["comparison"] = cmp
    return doc


def run(args):
    doc = import_file(args.model, args.output, timesteps=args.timesteps, levels=args.levels,
                      w_bits=args.w_bits, in_bits=args.in_bits, input_scale=args.input_scale,
                      reset=args.reset, inputs=args.inputs, dt=args.dt)
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"imported {args.model} (T={doc['timesteps']}) to {doc['network']}")
    print(f"  {'layer':<12} {'kind':<10} {'node':<12} {'theta':>7} {'reset':<5} "
          f"{'weight err':>10} {'theta err':>10}")
    for l in doc["layers"]:
        th = "-" if l["threshold"] is None else str(l["threshold"])
        te = "-" if l["threshold_error"] is None else f"{l['threshold_error']:.2e}"
        clip = f"  ({l['clipped']} weights clipped)" if l["clipped"] else ""
        print(f"  {l['name']:<12} {l['kind']:<10} {l['node']:<12} {th:>7} "
              f"{(l['reset'] or '-') if l['threshold'] is not None else '-':<5} "
              f"{l['weight_error']:>10.2e} {te:>10}{clip}")
    print("  (errors: max|w - w_q/Q| / max|w|, |theta_int_effective - theta| / theta)")
    for l in doc["layers"]:
        if l.get("beta_asked") is not None:
            print(f"  leak of layer '{l['name']}' (node '{l['node']}'): tau={l['tau']:g} "
                  f"-> beta asked {l['beta_asked']:.6g}, leak k={l['leak']} gives "
                  f"beta = 1 - 2^-{l['leak']} = {l['beta']:.6g}, relative error "
                  f"{l['beta_error']:.2e}")
    cmp = doc.get("comparison")
    if cmp:
        line = (f"float NIR graph vs integer golden on {cmp['n']} inputs: "
                f"{100 * cmp['agreement']:.2f} % of predictions agree")
        if "golden_accuracy" in cmp:
            line += (f"; accuracy float {100 * cmp['float_accuracy']:.2f} %, golden "
                     f"{100 * cmp['golden_accuracy']:.2f} %")
        print(line)
    return 0
