"""`mlsnn convert`: a trained PyTorch ReLU ANN → multi-level SNN IR by layer-wise calibration
(seed 004; docs/convert.md), optionally with AdaFire levels and SSC threshold ratios."""

import json
import os
import sys

import numpy as np

from golden.errors import MlsnnError

NAME = "convert"
HELP = "PyTorch ReLU ANN (TorchScript, or state dict + --arch) -> multi-level SNN IR"
DESCRIPTION = ("Convert a trained ReLU network (a torch.nn.Sequential of Linear, Conv2d, "
               "BatchNorm, ReLU, MaxPool2d/AvgPool2d, Flatten) to the integer IR by layer-wise "
               "calibration on training data: per spiking layer the MSE-optimal threshold of a "
               "ClipFloor with T*N levels and a bias correction by the mean error (seed 004 "
               "Eqs. 5, 6, 8). --adafire chooses per-layer levels under an energy budget "
               "(Eqs. 9, 11), --ssc per-layer threshold ratios (Eqs. 12-15). Writes "
               "DIR/network.json, DIR/network.npz and DIR/inputs.npz (the test split). "
               "Example: mlsnn convert ann.pt --dataset digits --timesteps 2 --levels 4 -o net")


def add_arguments(p):
    p.add_argument("model", metavar="ann.pt",
                   help="TorchScript file of a Sequential, or a state dict (with --arch)")
    p.add_argument("--arch", metavar="ARCH_JSON",
                   help="architecture of a state dict: a JSON list of layers, e.g. "
                        "[{\"type\": \"Linear\", \"in_features\": 64, \"out_features\": 10}]")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--dataset", default="digits", metavar="digits|mnist:DIR|PATH",
                   help="calibration (train split) and test data (default digits)")
    p.add_argument("--timesteps", type=int, default=2, metavar="T", help="timesteps (default 2)")
    p.add_argument("--levels", type=int, default=4, metavar="N",
                   help="levels of every spiking layer (default 4; AdaFire's base)")
    p.add_argument("--w-bits", type=int, default=8, help="signed weight width (default 8)")
    p.add_argument("--input-scale", type=float, metavar="S",
                   help="float value of one pixel unit in the ANN's input (default: the "
                        "dataset's, 1/16 for digits)")
    p.add_argument("--calib-samples", type=int, default=1024, metavar="K",
                   help="training images used for calibration (default 1024)")
    p.add_argument("--grid", type=int, default=100,
                   help="points of the threshold search (default 100)")
    p.add_argument("--adafire", action="store_true",
                   help="choose per-layer levels (AdaFire); needs --energy-budget")
    p.add_argument("--energy-budget", type=float, metavar="NJ",
                   help="AdaFire: energy per inference in nJ (mlsnn's energy model)")
    p.add_argument("--level-choices", default="1,2,4,8", metavar="N,N,...",
                   help="AdaFire: candidate levels per layer (default 1,2,4,8)")
    p.add_argument("--ssc", action="store_true",
                   help="choose per-layer threshold ratios rho (Sensitivity Spike Compression)")
    p.add_argument("--ssc-rho", default="1,1.5,2,3", metavar="R,R,...",
                   help="SSC: candidate ratios (default 1,1.5,2,3)")
    p.add_argument("--ssc-slack", type=float, default=0.0, metavar="F",
                   help="SSC: sensitivity budget (1+F) x the sensitivity before SSC (default 0)")
    p.add_argument("--energy-samples", type=int, default=256, metavar="K",
                   help="calibration images the energy is measured on (default 256)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _list(text, option, kind, minimum, maximum=None):
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise MlsnnError(f"{option} must be a comma-separated list of numbers, not "
                         f"{text!r}") from None
    import math
    if not values or not all(math.isfinite(v) and v >= minimum and
                             (maximum is None or v <= maximum) for v in values):
        top = f" and <= {maximum}" if maximum is not None else ""
        raise MlsnnError(f"{option} must list numbers >= {minimum}{top}, not {text!r}")
    return sorted(set(values))


def _check(args):
    """Every option before any work."""
    from flows.io import check_number

    for opt, value, lo, hi in (("--timesteps", args.timesteps, 1, None),
                               ("--levels", args.levels, 1, 255),
                               ("--w-bits", args.w_bits, 2, 16),
                               ("--calib-samples", args.calib_samples, 1, None),
                               ("--grid", args.grid, 1, None),
                               ("--energy-samples", args.energy_samples, 1, None)):
        if value < lo or (hi is not None and value > hi):
            raise MlsnnError(f"{opt} must be an integer in [{lo}, {hi or 'inf'}], not {value}")
    check_number(args.input_scale, "--input-scale", minimum=0, min_open=True)
    check_number(args.energy_budget, "--energy-budget", minimum=0, min_open=True)
    check_number(args.ssc_slack, "--ssc-slack", minimum=0)
    if args.adafire != (args.energy_budget is not None):
        raise MlsnnError("--adafire and --energy-budget NJ go together")
    return (_list(args.level_choices, "--level-choices", int, 1, 255),
            _list(args.ssc_rho, "--ssc-rho", float, 1.0))


def run(args):
    from flows.commands.energy import _hw_fifo_depth
    from flows.io import check_output_dir
    from golden import ir
    from golden.convert import convert, load_ann
    from golden.datasets import load_dataset

    choices, rhos = _check(args)
    check_output_dir(args.output)
    model = load_ann(args.model, args.arch)
    data = load_dataset(args.dataset)
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    net, doc = convert(model, data, timesteps=args.timesteps, levels=args.levels,
                       w_bits=args.w_bits, input_scale=args.input_scale,
                       calib_samples=args.calib_samples, grid=args.grid,
                       adafire_budget=args.energy_budget, level_choices=choices,
                       ssc_rhos=rhos if args.ssc else None, ssc_slack=args.ssc_slack,
                       energy_samples=args.energy_samples, fifo_depth=_hw_fifo_depth(), log=log)
    path = ir.save(net, args.output)
    x = net.check_inputs(data.x_test.reshape((-1,) + net.input.shape))
    inputs = os.path.join(args.output, "inputs.npz")
    np.savez(inputs, x=x, y=data.y_test)
    doc.update(network=path, inputs=inputs, dataset=data.name, timesteps=args.timesteps)
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"wrote {path} (T={args.timesteps}, N={doc['levels']}, rho={doc['rho']}); "
          f"energy {doc['energy_nJ']:.4g} nJ per inference, sensitivity (KL) "
          f"{doc['sensitivity']:.3e}")
    print(f"test accuracy on {doc['n_test']} samples of {data.name}: ANN "
          f"{100 * doc['ann_accuracy']:.2f} %, SNN (integer golden) "
          f"{100 * doc['snn_accuracy']:.2f} % (drop "
          f"{100 * (doc['ann_accuracy'] - doc['snn_accuracy']):+.2f} points)")
    print(f"test inputs written to {inputs} (arrays x, y)")
    return 0
