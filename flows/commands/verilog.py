"""`mlsnn verilog`: IR network → Verilog of the accelerator (hw.network.NetworkTop)."""

import json
import sys

from flows.io import add_lanes_argument, add_pixels_argument
from golden.errors import MlsnnError

NAME = "verilog"
HELP = "write the Verilog of the accelerator of an IR network"
DESCRIPTION = ("Generate the event-driven accelerator of a sequential IR network (layer cores "
               "chained by FIFOs, input streamer, readout, counters) and write it as one Verilog "
               "file. Ports are listed in docs/hw-interfaces.md. The file is Verilog-2005: "
               "simulate it as such (e.g. iverilog -g2005). "
               "Example: mlsnn verilog --ir net/network.json -o top.v")


def add_arguments(p):
    p.add_argument("--ir", required=True, metavar="NETWORK_JSON",
                   help="IR network (network.json or its directory)")
    p.add_argument("-o", "--output", required=True, metavar="TOP_V", help="Verilog file to write")
    p.add_argument("--top", default="top", help="name of the top module (default top)")
    p.add_argument("--discharge", choices=["parallel", "serial"], default="parallel",
                   help="fire unit: N comparators or N micro-steps (default parallel)")
    add_lanes_argument(p)
    add_pixels_argument(p)
    p.add_argument("--synapse", choices=["mul", "serial"], default="mul",
                   help="z*w with a multiplier or z additions (default mul)")
    p.add_argument("--fifo-depth", type=int, default=None,
                   help="depth of the inter-core FIFOs, 1..65536 (default 16)")
    p.add_argument("--monitor", action="store_true",
                   help="add the tap_<k> monitor ports (every token of every core)")
    p.add_argument("--ram-width", type=int, default=None, metavar="BITS",
                   help="build lane words wider than BITS as memories of at most BITS bits "
                        "side by side (same behaviour); 18 for ECP5 block RAM, what mlsnn "
                        "synth and board use there (docs/synthesis.md; default: one memory)")
    p.add_argument("--weights", choices=("rom", "block"), default="rom",
                   help="weight ROMs as the synthesis tool chooses (rom, default), or marked "
                        "(* rom_style = \"block\" *) for block RAM even where it would build "
                        "them in LUTs (block; docs/synthesis.md)")
    p.add_argument("--no-counters", action="store_true",
                   help="build no counter read port (ctr_data is 0, so synthesis removes every "
                        "counter: a deployment build with the same behaviour and cycles)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def run(args):
    from hw.export import network_verilog, write_text
    from flows.io import (apply_lanes, check_fifo_depth, check_output_file,
                          check_pixels_per_beat, load_network)
    check_fifo_depth(args.fifo_depth)
    if args.ram_width is not None and not 1 <= args.ram_width <= 4096:
        raise MlsnnError(f"--ram-width must be 1..4096 bits, not {args.ram_width}")
    net = apply_lanes(load_network(args.ir), args.lanes, args.fire_lanes)
    check_pixels_per_beat(net, args.pixels_per_beat)
    check_output_file(args.output, make_parents=True)
    text, _ = network_verilog(net, name=args.top, fifo_depth=args.fifo_depth,
                                discharge=args.discharge, synapse=args.synapse,
                                monitor=args.monitor, pixels_per_beat=args.pixels_per_beat,
                                ram_width=args.ram_width, counters=not args.no_counters,
                                weights=args.weights)
    write_text(args.output, text)
    head = text.split("endmodule", 1)[0]         # the top module comes first
    ports = [line.strip().rstrip(";") for line in head.splitlines()
             if line.startswith(("  input ", "  output "))]
    summary = {"output": args.output, "top": args.top, "lines": len(text.splitlines()),
               "layers": [l.name for l in net.layers], "ports": ports}
    if args.json:
        json.dump(summary, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"wrote {args.output}: module {args.top}, {len(net.layers)} layer cores, "
              f"{summary['lines']} lines")
    return 0
