"""`mlsnn export-nir`: IR → a NIR graph (model.nir) that `mlsnn import` reads back identically."""

import json
import os
import sys

from golden.errors import MlsnnError

NAME = "export-nir"
HELP = "IR (network.json + .npz) -> NIR graph (model.nir); mlsnn's fields as metadata"
DESCRIPTION = ("Write an IR as a NIR graph: the integer weights as floats, every spiking layer "
               "as Affine/Conv2d -> IF (a leaky one, leak k, as LIF with tau = dt*2^k, r = "
               "2^k), a pool as SumPool2d -> IF, a SEW join as the edges of both streams into "
               "the next node, a barrier join as an IF with two inputs (Scale for a stream "
               "weight), the readout as its synapse "
               "-> Output (logits: the sum over T). Levels, resets, widths, T and in_bits go "
               "into NIR metadata, so 'mlsnn import' gives back the same IR; other NIR tools "
               "see binary hard-reset IF neurons (exact for N = 1 and a hard reset, or T = 1). "
               "See docs/import.md. Example: mlsnn export-nir --ir net -o model.nir")


def add_arguments(p):
    p.add_argument("--ir", required=True, metavar="network.json",
                   help="the network (network.json, or its directory)")
    p.add_argument("-o", "--output", required=True, metavar="model.nir", help="the NIR file")
    p.add_argument("--dt", type=float, metavar="DT",
                   help="step length the LIF time constants of leaky layers are written for "
                        "(default 1e-4, snnTorch's; kept as mlsnn_dt)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args):
    from flows.io import load_network
    from golden import nir_io

    net = load_network(args.ir)
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if os.path.isdir(args.output) or not os.path.isdir(out_dir):
        raise MlsnnError(f"-o {args.output}: must be a file in an existing directory")
    graph, notes = nir_io.to_nir(net, dt=nir_io.DEFAULT_DT if args.dt is None else args.dt)
    try:
        nir_io.write(graph, args.output)
    except OSError as e:
        raise MlsnnError(f"-o {args.output}: cannot write ({e})") from None
    doc = {"nir": args.output, "nodes": list(graph.nodes), "notes": notes}
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"wrote {args.output}: {len(graph.nodes)} NIR nodes "
          f"({' -> '.join(graph.nodes)})")
    for n in notes:
        print(f"  note: {n}")
    return 0
