"""`mlsnn demo`: the main job end to end (see :mod:`flows.demo`)."""

import os

from flows.demo import DEFAULT, Demo

NAME = "demo"
HELP = "the main job end to end: train, export, RTL simulation, synthesis, energy (out/demo/)"
DESCRIPTION = ("Train a multi-level SNN on scikit-learn's digits (cached after the first run), "
               "export it to the integer IR, simulate test images on the RTL with Icarus "
               "(bit-exact check of every image against the golden model), synthesize for "
               "iCE40 UP5K, compare the energy model with the measured counters, and write "
               "out/demo/report.md with PNG plots. Every stage runs the mlsnn command a user "
               "would run; logs go to out/demo/logs/.")


def add_arguments(p):
    p.add_argument("-o", "--output", default=os.path.join("out", "demo"), metavar="DIR",
                   help="output directory (default out/demo)")
    p.add_argument("--images", type=int, default=100,
                   help="test images to simulate on the RTL (default 100)")
    p.add_argument("--sim", choices=["icarus", "amaranth"], default="icarus",
                   help="RTL simulator (default icarus)")
    p.add_argument("--target", choices=["ice40-up5k", "ecp5-85f"], default="ice40-up5k",
                   help="synthesis target (default ice40-up5k)")
    p.add_argument("--arch", default=DEFAULT["arch"],
                   choices=["mlp", "cnn", "sew-resnet", "sparse-resnet"],
                   help=f"network to train (default {DEFAULT['arch']})")
    p.add_argument("--timesteps", type=int, default=DEFAULT["timesteps"], help="T (default 1)")
    p.add_argument("--levels", type=int, default=DEFAULT["levels"], help="N (default 4)")
    p.add_argument("--epochs", type=int, default=DEFAULT["epochs"], help="training epochs")
    p.add_argument("--retrain", action="store_true", help="ignore the cached model")
    p.add_argument("--skip-synth", action="store_true", help="skip synthesis")


def run(args):
    demo = Demo(args.output, images=args.images, sim=args.sim, target=args.target,
                retrain=args.retrain, skip_synth=args.skip_synth,
                config=dict(arch=args.arch, timesteps=args.timesteps, levels=args.levels,
                            epochs=args.epochs))
    return 0 if demo.run() else 1
