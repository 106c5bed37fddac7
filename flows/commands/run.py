"""`mlsnn run`: run inputs on a programmed board over its serial port."""

import json
import sys

import numpy as np

from flows.io import load_inputs, load_network
from golden.errors import MlsnnError

NAME = "run"
HELP = "run inputs on a programmed board (--port /dev/ttyUSB1 --inputs x.npz)"
DESCRIPTION = ("Talk to a board programmed by 'mlsnn board' over its serial port: run every "
               "input (counters cleared before each), print the predictions and the per-layer "
               "counters summed over the batch. With --ir, check that the board runs that "
               "network and compare predictions, readouts and counters with the golden model. "
               "A board built with SPRAM weights (mlsnn board --weights) gets them from the IR "
               "first, so it needs --ir. "
               "Example: mlsnn run --port /dev/ttyUSB1 --inputs x.npz --ir out/icebreaker")


def add_arguments(p):
    p.add_argument("--port", required=True, metavar="DEVICE",
                   help="serial device of the board (e.g. /dev/ttyUSB1 for an iCEBreaker)")
    p.add_argument("--inputs", required=True, metavar="x.npz",
                   help="inputs: .npz with array 'x' of shape [B, *input_shape]")
    p.add_argument("--ir", metavar="network.json",
                   help="the network: check the board, load its SPRAM weights if it has any, "
                        "and compare with the golden model")
    p.add_argument("--baud", type=int, default=115200, help="UART rate (default 115200)")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds to wait for an answer (default 5)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args):
    from flows.host import Board, SerialTransport
    from flows.io import check_number
    check_number(args.timeout, "--timeout (seconds)", minimum=0, maximum=3600, min_open=True)
    if args.baud < 1:
        raise MlsnnError(f"--baud must be a positive rate in bit/s, not {args.baud}")
    net = load_network(args.ir) if args.ir else None
    x = load_inputs(args.inputs, net)
    with SerialTransport(args.port, baud=args.baud, timeout=args.timeout) as t:
        board = Board(t)
        if net is not None:
            board.check_network(net)
        if board.info.needs_weights:
            if net is None:
                raise MlsnnError(f"the board has weights in SPRAM ({board.info.load_words} "
                                 f"words) that must be loaded from the network first: give "
                                 f"--ir (the board's output directory or its network.json)")
            board.load_weights(net, progress=_load_progress)
        res = board.run(x)
    return report(res, board.info, net, x, as_json=args.json)


def _load_progress(done, total):
    """About ten lines for a long load (the MNIST MLP's fc0: 50,176 words, ~26 s at 115200)."""
    from flows.host import Board
    chunk = Board.LOAD_CHUNK
    if done == total or done % max(chunk, total // 10) < chunk:
        print(f"[run] SPRAM weights: {done}/{total} words loaded", file=sys.stderr, flush=True)


def report(res, info, net, x, *, as_json=False):
    """Print a board run (and its comparison with the golden model when ``net`` is given)."""
    from golden.reference import COUNTERS
    from golden.reference import run as run_reference
    names = [l.name for l in net.layers] if net is not None else None
    doc = res.to_json(names)
    mismatches, undetermined = [], np.zeros(len(res.predictions), bool)
    if net is not None:
        gold = run_reference(net, x)
        flags = np.asarray(res.overflow, bool)
        for i, layer in enumerate(net.layers):
            g = gold.overflow[layer.name]
            live = ~undetermined          # images still comparable at this layer
            if (live & (((g == 0) & flags[:, i]) | ((g == 2) & ~flags[:, i]))).any():
                mismatches.append(f"{layer.name}.overflow")
            if layer.name not in gold.saturations:
                # order-dependent saturation (barrier, after a SEW join): not comparable
                undetermined |= flags[:, i]
        ok = ~undetermined
        if (gold.predictions[ok] != res.predictions[ok]).any():
            mismatches.append("predictions")
        if (gold.readout[ok] != res.readout[ok]).any():
            mismatches.append("readout")
        for i, layer in enumerate(net.layers):
            for k in COUNTERS:
                if (gold.counters[layer.name][k][ok] != np.asarray(res.counters[i][k])[ok]).any():
                    mismatches.append(f"{layer.name}.{k}")
            sats = res.counters[i].get("saturations")
            if sats is not None and layer.name in gold.saturations and \
                    (gold.saturations[layer.name][ok] != np.asarray(sats)[ok]).any():
                mismatches.append(f"{layer.name}.saturations")
        doc["golden_match"] = not mismatches and not undetermined.any()
        doc["mismatches"] = mismatches
        doc["undetermined_images"] = [int(b) for b in np.flatnonzero(undetermined)]
    if as_json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"board: {info.n_in} inputs, {info.n_classes} classes, {info.n_layers} layers, "
              f"T={info.timesteps}, {info.clk_freq / 1e6:g} MHz; {len(res.predictions)} input(s)")
        preds = doc["predictions"]
        print("predictions: " + " ".join(map(str, preds[:32])) + (" ..." if len(preds) > 32
                                                                 else ""))
        cols = ("ev_in", "ev_out", "syn_updates", "syn_acc", "cycles")
        print(f"{'layer':<12}" + "".join(f"{c:>13}" for c in cols) + "  overflow")
        for layer in doc["layers"]:
            c = layer["counters"]
            print(f"{layer['name']:<12}" + "".join(f"{c[k]:>13}" for k in cols) +
                  f"  {'yes' if layer['overflow'] else 'no'}")
        if net is not None:
            print("golden model: " + ("MISMATCH in " + ", ".join(mismatches) if mismatches
                                      else "UNDETERMINED" if undetermined.any()
                                      else "match (predictions, readouts, counters)"))
    if mismatches:
        raise MlsnnError(f"the board disagrees with the golden model ({', '.join(mismatches[:5])})")
    if undetermined.any():
        print(f"mlsnn run: warning: no bit-exact comparison for {int(undetermined.sum())} "
              f"input(s): a potential saturated where the result depends on the arrival order "
              f"of two streams (a forced narrow potential_width)", file=sys.stderr)
        return 3
    return 0
