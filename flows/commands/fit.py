"""`mlsnn fit`: does a network's hardware fit a device? Every memory, where yosys puts it, and
the device's totals, in a second, before any synthesis."""

import json
import sys

from flows.io import load_network

NAME = "fit"
HELP = "every memory of the network's hardware on --target, and whether they fit (no synthesis)"
DESCRIPTION = ("List every memory the hardware of a network builds (per layer: weights, biases, "
               "potentials, conv fan-out tables, pool maps; the top's input buffer and "
               "inter-core FIFOs), the primitive yosys maps each to (block RAM and its "
               "configuration, LUT RAM, or logic; the rule of yosys' memory_libmap) and the "
               "device's totals. Exit 0 when everything fits; otherwise the table is still "
               "printed, then one line on stderr names the first layer that does not fit, and "
               "the exit status is 1. --weights places weight memories in the iCE40 UP5K's SPRAM as "
               "mlsnn synth --weights does. Example: mlsnn fit --ir net --target ice40-up5k "
               "--weights fc0")


def add_arguments(p):
    from flows.fit import DEVICES
    p.add_argument("--ir", required=True, metavar="network.json",
                   help="the network (network.json, or its directory)")
    p.add_argument("--target", required=True, metavar="TARGET",
                   help=f"one of {', '.join(DEVICES)}")
    p.add_argument("--weights", default="rom", metavar="rom|block|spram|LAYER[=STORE],...",
                   help="where the dense/conv layers keep their weights, as for mlsnn synth: "
                        "rom (default), block (every weight ROM in block RAM), spram (every "
                        "layer in iCE40 UP5K SPRAM) or layers: fc0 (SPRAM), fc0=block, "
                        "joined by commas")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON instead of the table (\"fits\", \"error\", "
                        "per-section memories)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="also write the JSON report to FILE")


def run(args):
    from flows.fit import fit_report, get_device, write_json
    from flows.io import check_output_file
    from golden.errors import MlsnnError
    from flows.commands.synth import parse_weights
    get_device(args.target)
    weights = parse_weights(args.weights)
    if args.output:
        check_output_file(args.output)
    net = load_network(args.ir)
    rep = fit_report(net, args.target, weights=weights)
    if args.output:
        write_json(rep, args.output)
    if args.json:
        json.dump(rep.to_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(rep.table())
    sys.stdout.flush()
    if not rep.fits:
        raise MlsnnError(rep.error)
    return 0
