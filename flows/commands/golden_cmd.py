"""`mlsnn golden`: run the bit-exact integer reference on inputs."""

import json
import sys

from flows.io import load_inputs, load_network
from golden.cycles import network_cycles, unsupported
from golden.reference import COUNTERS, run as run_reference

NAME = "golden"
HELP = "run the integer golden model on inputs: predictions and per-layer counters"
DESCRIPTION = ("Run the bit-exact integer reference (SPEC §3) of a network on a batch of inputs "
               "and print the predictions and every per-layer counter of SPEC §5, summed over "
               "the batch. A layer whose potential_width was forced narrow saturates exactly as "
               "the hardware does where its event order is fixed (one input stream); where the "
               "result depends on the arrival order of two streams (barrier joins, layers after "
               "a SEW join) a warning on stderr says so and the JSON has \"exact\": false. "
               "It also predicts the cycles per inference of the RTL and every core's busy "
               "cycles (the cycle model of docs/cycles.md: \"cycles\" in the JSON). "
               "Example: mlsnn golden --ir net/network.json --inputs net/inputs.npz")


def add_arguments(p):
    p.add_argument("--ir", required=True, metavar="network.json",
                   help="the network (network.json, or its directory)")
    p.add_argument("--inputs", required=True, metavar="x.npz",
                   help="inputs: .npz with array 'x' of shape [B, *input_shape] (or a .npy)")
    p.add_argument("--pixels-per-beat", type=int, default=1, metavar="P",
                   help="pixels per input beat of the modelled hardware (cycle model; "
                        "default 1)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args):
    net = load_network(args.ir)
    x = load_inputs(args.inputs, net)
    res = run_reference(net, x)
    doc = res.to_json(net)
    why = unsupported(net)
    cyc = None if why else network_cycles(net, x, pixels_per_beat=args.pixels_per_beat,
                                          golden=res)
    doc["cycles"] = {"unsupported": why} if why else cyc.to_json()
    for w in doc["warnings"]:
        print(f"mlsnn golden: warning: {w}", file=sys.stderr)
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"network '{net.name}': {len(net.layers)} layers, T={net.timesteps}, "
          f"{x.shape[0]} input(s)")
    preds = doc["predictions"]
    shown = " ".join(map(str, preds[:32])) + (" ..." if len(preds) > 32 else "")
    print(f"predictions: {shown}")
    if net.early_exit is not None:
        used = doc["timesteps_used"]
        print(f"timesteps used (early exit, docs/early-exit.md): mean "
              f"{sum(used) / len(used):.3f}, " + " ".join(map(str, used[:32]))
              + (" ..." if len(used) > 32 else ""))
    if cyc is None:
        print(f"cycles per inference: not modelled ({why})")
    else:
        c = cyc.cycles
        print(f"cycles per inference (cycle model, pixels per beat {args.pixels_per_beat}): "
              f"mean {c.mean():.1f}, min {c.min()}, max {c.max()}")
    head = f"{'layer':<12}{'kind':<13}" + "".join(f"{c:>13}" for c in COUNTERS) + "  overflow"
    print(head)
    for layer in doc["layers"]:
        c = layer["counters"]
        print(f"{layer['name']:<12}{layer['kind']:<13}" +
              "".join(f"{c[k]:>13}" for k in COUNTERS) + f"  {layer['overflow']}")
    if doc["overflow"]:
        print("(overflow: 'saturated' = saturated exactly as the hardware does; 'possible' / "
              "'certain' = order-dependent, see the warnings on stderr)")
    return 0
