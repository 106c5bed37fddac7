"""`mlsnn simulate`: run the RTL on inputs and compare it with the golden model, bit for bit."""

import json
import sys
import time

import numpy as np

from golden.counters import HW_COUNTERS

from flows.io import add_lanes_argument, add_pixels_argument

NAME = "simulate"
HELP = ("run the RTL (Amaranth simulator, Icarus or Verilator) on inputs; compare with the "
        "golden model")
DESCRIPTION = ("Simulate the accelerator of an IR network cycle-accurately on every input image "
               "(--sim amaranth: Amaranth's simulator; --sim icarus / --sim verilator: the "
               "exported Verilog under cocotb on Icarus Verilog or on Verilator, whose C++ build "
               "is cached by design) and compare every event token of every layer, the "
               "readout potentials, the predictions and every counter with the golden model "
               "(golden.reference). Residual networks (barrier and SEW joins) are supported; the "
               "table lists every layer's counters, event counts first (ev_in, ev_out). "
               "Prints the first mismatch and exits 1 on any. A forced narrow potential_width "
               "that saturates where the golden model predicts it exactly (one input stream) is "
               "compared bit for bit like the rest; where the saturated result depends on the "
               "arrival order of two streams the status is UNDETERMINED (never MATCH), a warning "
               "goes to stderr and the exit status is 3. "
               "Example: mlsnn simulate --ir net/network.json --inputs net/inputs.npz "
               "--sim icarus --json")


def add_arguments(p):
    p.add_argument("--ir", required=True, metavar="NETWORK_JSON",
                   help="IR network (network.json or its directory)")
    p.add_argument("--inputs", required=True, metavar="X_NPZ",
                   help=".npz with array 'x' of shape [B, *input_shape]")
    p.add_argument("--sim", choices=["amaranth", "icarus", "verilator"], default="amaranth",
                   help="RTL simulator (default amaranth)")
    p.add_argument("--images", type=int, default=None, help="simulate only the first N images")
    p.add_argument("--discharge", choices=["parallel", "serial"], default="parallel",
                   help="fire unit variant (default parallel)")
    add_lanes_argument(p)
    add_pixels_argument(p)
    p.add_argument("--synapse", choices=["mul", "serial"], default="mul",
                   help="synapse variant (default mul)")
    p.add_argument("--fifo-depth", type=int, default=None,
                   help="depth of every inter-core FIFO (default: sized from the IR, 16, and "
                        "room for one timestep of events on the edges into a join)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random input gaps and output stalls (default 0)")
    p.add_argument("--gaps", type=float, default=0.0, metavar="P",
                   help="probability of an idle cycle before each pixel (default 0)")
    p.add_argument("--stalls", type=float, default=0.0, metavar="P",
                   help="probability of a stall cycle before each result beat (default 0)")
    p.add_argument("--throttle", type=float, default=0.0, metavar="P",
                   help="--sim amaranth: probability, per cycle and inter-core queue, that the "
                        "queue offers nothing to its consumer (default 0)")
    p.add_argument("--weights", default="rom", metavar="rom|block|spram|LAYER[=STORE],...",
                   help="where the dense/conv layers keep their weights, as for mlsnn synth: "
                        "rom (default), block (the same ROMs in block RAM: no change in "
                        "simulation) or SPRAM banks (spram, or layer names), which the bench "
                        "loads through the top's wload port before the first image")
    p.add_argument("--vcd", metavar="WAVES_VCD", help="write the waveforms to this VCD file")
    p.add_argument("--build-dir", metavar="DIR",
                   help="cocotb build directory root for --sim icarus/verilator (default: a "
                        "temp dir, or $MLSNN_BUILD)")
    p.add_argument("--json", action="store_true",
                   help='print {"match", "status" (match, mismatch or undetermined), "cycles", "predictions", "layers": [{"name", "kind", '
                        '"counters"}]} (counters summed over the images)')


class _Progress:
    """'simulate: k/B images done' on stderr, at most every 2 s, and once at the end."""

    def __init__(self):
        self.last = 0.0
        self.t0 = time.monotonic()
        self.finished = False

    def __call__(self, k, total):
        now = time.monotonic()
        if self.finished or not (k == total or now - self.last >= 2.0):
            return
        self.last = now
        self.finished = k == total
        print(f"simulate: {k}/{total} images done ({now - self.t0:.0f} s)", file=sys.stderr,
              flush=True)


def run(args):
    from flows.io import apply_lanes, load_inputs, load_network
    from golden.errors import MlsnnError
    from golden.reference import run as golden_run
    from hw.network import check_supported
    from sim.scoreboard import summary, verdict

    for name, p in (("--gaps", args.gaps), ("--stalls", args.stalls)):
        if not 0.0 <= p < 1.0:
            raise MlsnnError(f"{name} must be a probability in [0, 1), not {p}")
    if not 0.0 <= args.throttle < 1.0 or (args.throttle and args.sim != "amaranth"):
        raise MlsnnError(f"--throttle must be a probability in [0, 1) and needs --sim "
                         f"amaranth, not {args.throttle} with --sim {args.sim}")
    from flows.io import check_fifo_depth, check_output_dir, check_output_file, check_seed
    check_fifo_depth(args.fifo_depth)
    check_seed(args.seed)
    if args.images is not None and args.images < 1:
        raise MlsnnError(f"--images must be at least 1, not {args.images}")
    if args.vcd:
        check_output_file(args.vcd, "--vcd")
    if args.build_dir:
        check_output_dir(args.build_dir, "--build-dir")
    from flows.commands.synth import parse_weights
    weights = parse_weights(args.weights)
    net = apply_lanes(load_network(args.ir), args.lanes, args.fire_lanes)
    check_supported(net)
    from flows.io import check_pixels_per_beat
    check_pixels_per_beat(net, args.pixels_per_beat)
    if weights != "rom":
        from hw.network import weight_storage
        try:
            weight_storage(net, weights)
        except (TypeError, ValueError) as e:
            raise MlsnnError(str(e)) from None
    x = load_inputs(args.inputs, net)
    if args.images is not None:
        x = x[:args.images]
    if x.shape[0] == 0:
        raise MlsnnError(f"{args.inputs}: no images in 'x'")
    golden = golden_run(net, x)
    opts = dict(seed=args.seed, gap=args.gaps, stall=args.stalls, fifo_depth=args.fifo_depth,
                discharge=args.discharge, synapse=args.synapse, vcd=args.vcd,
                progress=_Progress(), pixels_per_beat=args.pixels_per_beat)
    t0 = time.monotonic()
    if args.sim == "amaranth":
        from sim.amaranth_run import run_network
        rtl = run_network(net, x, throttle=args.throttle, weights=weights, **opts)
    else:
        from sim.cocotb_run import run_network_cocotb
        rtl = run_network_cocotb(net, x, simulator=args.sim, golden=golden,
                                 build_dir=args.build_dir, weights=weights, **opts)
    elapsed = time.monotonic() - t0
    opts["progress"](x.shape[0], x.shape[0])
    v = verdict(net, golden, rtl, x)
    doc = {"match": v.match, "status": v.status, "sim": args.sim, "images": int(x.shape[0])}
    doc.update(summary(net, rtl))
    doc["seconds"] = round(elapsed, 3)
    if v.messages:
        doc["mismatches"] = v.messages[:20]
        print(f"mlsnn simulate: mismatch: {v.first_line()}", file=sys.stderr)
    elif v.undetermined:
        doc["undetermined"] = v.undetermined[:20]
        print(f"mlsnn simulate: warning: no bit-exact comparison: {v.first_line()}",
              file=sys.stderr)
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_text(net, doc, golden)
    return EXIT[v.status]


#: Exit status per verdict: a saturation that makes the comparison meaningless is never a match.
EXIT = {"match": 0, "mismatch": 1, "undetermined": 3}


def _print_text(net, doc, golden):
    status = doc["status"].upper()
    acc = np.asarray(doc["predictions"]) == golden.predictions
    print(f"{status}: {doc['images']} image(s) on {doc['sim']}, {doc['cycles']} cycles, "
          f"predictions equal golden for {int(acc.sum())}/{len(acc)}")
    width = max(5, max(len(l["name"]) for l in doc["layers"]))
    kw = max(4, max(len(l["kind"]) for l in doc["layers"]))
    print(f"{'layer':<{width}} {'kind':<{kw}} " + " ".join(f"{n:>11}" for n in HW_COUNTERS))
    for layer in doc["layers"]:
        print(f"{layer['name']:<{width}} {layer['kind']:<{kw}} "
              + " ".join(f"{layer['counters'][n]:>11}" for n in HW_COUNTERS))
    if any(l["kind"] == "join-sew" for l in doc["layers"]):
        print("(a join-sew passes the events of both its inputs on: the next layer's ev_in "
              "counts them all)")
