"""`mlsnn random-network`: write a random valid IR and matching random inputs."""

import json
import os
import sys

from golden import fixtures, ir
from golden.errors import MlsnnError

NAME = "random-network"
HELP = "write a random valid network (network.json + .npz) and matching random inputs"
DESCRIPTION = ("Write a random valid network and random inputs into a directory: network.json, "
               "network.npz and inputs.npz (array 'x'). Used for tests and quick tries. "
               "Example: mlsnn random-network --seed 3 --kind conv -o /tmp/net")


def add_arguments(p):
    p.add_argument("--seed", type=int, default=0, help="random seed, 0..2**63-1 (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--kind", choices=["dense", "conv", "residual"], default=None,
                   help="topology family (default: drawn from the seed)")
    p.add_argument("--timesteps", type=int, default=None, help="T (default: drawn)")
    p.add_argument("--levels", type=int, default=None, help="N of every layer (default: drawn)")
    p.add_argument("--join", choices=["barrier", "sew"], default=None,
                   help="residual join mode (implies --kind residual)")
    p.add_argument("--batch", type=int, default=8, help="number of random inputs (default 8)")
    p.add_argument("--in-bits", type=int, default=None,
                   help="width of an input value, 1..16 (default: drawn from 2, 4, 8)")
    p.add_argument("--max-neurons", type=int, default=48,
                   help="upper bound on the neurons of any layer (default 48)")
    p.add_argument("--non-square", action="store_true",
                   help="conv/residual: an input image with height != width")
    p.add_argument("--conv-readout", action="store_true",
                   help="conv/residual: a conv2d readout instead of the dense one")
    p.add_argument("--negative-v0", action="store_true",
                   help="negative v0 on most layers and barriers")
    p.add_argument("--wide-stream-weights", action="store_true",
                   help="barrier stream weights outside 1..3 (0, negative, up to 16 bits)")
    p.add_argument("--narrow-width", action="store_true",
                   help="force potential widths below the safe width so that overflow happens")
    p.add_argument("--pool", action="store_true",
                   help="conv/residual: max and average pooling layers (on the input, after "
                        "convolutions and joins)")
    p.add_argument("--hard-reset", action="store_true",
                   help="a hard reset (docs/reset.md) on about half the dense/conv2d layers "
                        "before the readout")
    p.add_argument("--leaky", action="store_true",
                   help="a leak k in 1..4 (docs/leak.md) on about half the firing dense/conv2d "
                        "layers")
    p.add_argument("--lanes", action="store_true",
                   help="lanes L in 2..4 (docs/lanes.md) on about half the dense/conv2d layers "
                        "(never on a conv2d readout), and L in 2, 4, 8 on about half the "
                        "barrier joins")
    p.add_argument("--narrow-fire", action="store_true",
                   help="with --lanes: fewer fire units than lanes (fire_lanes, docs/lanes.md) "
                        "on about half the layers with lanes")
    p.add_argument("--early-exit", action="store_true",
                   help="an early exit with a random alpha table (docs/early-exit.md); with "
                        "--kind, --join and --pool too (the kind drawn is dense or conv)")
    p.add_argument("--bitserial", action="store_true",
                   help="the bit-serial twin (docs/bitserial.md) of a T=1 dense or conv network; "
                        "no --timesteps, --pool, --hard-reset, --leaky, --narrow-width, "
                        "--lanes, --early-exit")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def run(args):
    if args.batch < 1:
        raise MlsnnError(f"--batch must be at least 1, not {args.batch}")
    if args.timesteps is not None and args.timesteps < 1:
        raise MlsnnError(f"--timesteps must be at least 1, not {args.timesteps}")
    if args.levels is not None and args.levels < 1:
        raise MlsnnError(f"--levels must be at least 1, not {args.levels}")
    from flows.io import check_output_dir, check_seed
    check_seed(args.seed)
    if args.join is not None and args.kind not in (None, "residual"):
        raise MlsnnError(f"--join {args.join} applies to --kind residual only, not --kind "
                         f"{args.kind}")
    if args.join is not None:
        args.kind = "residual"
    if args.pool and args.kind == "dense":
        raise MlsnnError("--pool applies to --kind conv or residual (pools need (C, H, W) "
                         "inputs), not --kind dense")
    check_output_dir(args.output)
    if args.max_neurons < 1:
        raise MlsnnError(f"--max-neurons must be at least 1, not {args.max_neurons}")
    if args.in_bits is not None and not 1 <= args.in_bits <= 16:
        raise MlsnnError(f"--in-bits must be in 1..16, not {args.in_bits}")
    net = fixtures.random_network(args.seed, kind=args.kind, timesteps=args.timesteps,
                                  levels=args.levels, join=args.join, max_neurons=args.max_neurons,
                                  in_bits=args.in_bits,
                                  non_square=args.non_square, conv_readout=args.conv_readout,
                                  negative_v0=args.negative_v0,
                                  wide_stream_weights=args.wide_stream_weights,
                                  narrow_width=args.narrow_width, pool=args.pool,
                                  hard_reset=args.hard_reset, leaky=args.leaky,
                                  lanes=args.lanes, early_exit=args.early_exit,
                                  bitserial=args.bitserial, narrow_fire=args.narrow_fire)
    path = ir.save(net, args.output)
    x = fixtures.random_inputs(net, args.batch, seed=args.seed)
    xpath = os.path.join(args.output, "inputs.npz")
    from flows.io import save_inputs
    save_inputs(xpath, x)
    summary = {"network": path, "inputs": xpath, "timesteps": net.timesteps,
               "input_shape": list(net.input.shape), "batch": args.batch,
               "layers": [{"name": l.name, "kind": l.label,
                           "out_shape": list(net.info(l.name).out_shape)} for l in net.layers]}
    if args.json:
        json.dump(summary, sys.stdout)
        sys.stdout.write("\n")
    else:
        shapes = " -> ".join(f"{l['name']}{tuple(l['out_shape'])}" for l in summary["layers"])
        print(f"wrote {path}, its .npz and {xpath} ({args.batch} inputs)")
        print(f"T={net.timesteps}, input {tuple(net.input.shape)}: {shapes}")
    return 0
