"""`mlsnn board`: a bitstream of a network behind the UART protocol, for a supported board."""

import json
import sys

from flows.io import add_lanes_argument, apply_lanes, load_network

NAME = "board"
HELP = "bitstream for --board icebreaker|ulx3s-85f with the UART host interface"
DESCRIPTION = ("Build the network behind a UART (the byte protocol of docs/board.md) for a "
               "board with amaranth-boards and the YoWASP tools, and write into DIR the "
               "bitstream, the Verilog, the resource/timing report (report.json, report.md) and "
               "PROGRAM.md (how to program the board and run inputs). --weights puts layers' "
               "weights in the UP5K's SPRAM (icebreaker only); mlsnn run --ir loads them over "
               "the UART. Example: mlsnn board --ir net/network.json --board icebreaker -o "
               "out/icebreaker")


def add_arguments(p):
    from flows.board_build import BOARDS
    p.add_argument("--ir", required=True, metavar="network.json",
                   help="the network (network.json, or its directory)")
    p.add_argument("--board", required=True, metavar="BOARD",
                   help=f"one of {', '.join(BOARDS)}")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--baud", type=int, default=115200, help="UART rate (default 115200)")
    add_lanes_argument(p)
    p.add_argument("--weights", default="rom", metavar="rom|block|spram|LAYER[=STORE],...",
                   help="where the dense/conv layers keep their weights, as for mlsnn synth: "
                        "rom (default, in the bitstream), block (every weight ROM in block "
                        "RAM, in the bitstream), spram (every layer in the iCE40 UP5K's SPRAM; "
                        "icebreaker only) or layers (fc0: SPRAM, fc0=block); mlsnn run --ir "
                        "loads SPRAM weights over the UART")
    p.add_argument("--seed", type=int, default=1,
                   help="nextpnr placement seed, 0..2**31-1 (default 1)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args):
    from flows.board_build import build_board, get_board
    from flows.board_build import _platform
    from flows.commands.synth import parse_weights
    from flows.io import check_output_dir, check_seed
    from golden.errors import MlsnnError
    from hw.uart import divisor_for
    b = get_board(args.board)
    check_seed(args.seed, bits=31)
    weights = parse_weights(args.weights)
    # The baud rate is checked before any elaboratable exists (an unused one would warn).
    try:
        divisor_for(_platform(b).default_clk_frequency, args.baud)
    except ValueError as e:
        raise MlsnnError(f"--baud {args.baud}: {e}") from None
    net = apply_lanes(load_network(args.ir), args.lanes, args.fire_lanes)
    check_output_dir(args.output)
    doc = build_board(net, b.name, args.output, baud=args.baud, seed=args.seed, weights=weights,
                      progress=lambda msg: print(f"[board] {msg}", file=sys.stderr, flush=True))
    if args.json:
        doc = {k: v for k, v in doc.items() if k != "utilization"}
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"{b.title}: {doc['bitstream']} in {args.output}")
    print(f"  {doc['luts']} LUT4, {doc['ffs']} FF, {doc['carry']} carry, {doc['brams']} BRAM, "
          f"{doc['dsps']} DSP" + (f", {doc['sprams']} SPRAM" if doc["sprams"] else "") +
          f"; Fmax {doc['fmax_mhz'] or 0:.1f} MHz (board clock "
          f"{doc['clock_mhz']:g} MHz); {doc['seconds']:.0f} s")
    if doc["load_words"]:
        print(f"  weights of {', '.join(doc['weights'])} in SPRAM: mlsnn run --ir "
              f"{args.output} loads their {doc['load_words']} words first")
    print(f"  program it and run inputs: see {args.output}/PROGRAM.md")
    return 0
