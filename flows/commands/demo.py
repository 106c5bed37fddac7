"""`mlsnn demo`: the main job end to end.

Until the full demo (train on digits, export, RTL simulation, synthesis, energy report) is in
place, this runs what exists end to end on a random network and says so.
"""

import os

from golden import ir
from golden.reference import run as run_reference

NAME = "demo"
HELP = "the main job end to end (writes out/demo/)"
DESCRIPTION = ("Run mlsnn end to end and write the results to out/demo/. The current demo runs "
               "the golden integer model on random networks of every kind; training, RTL "
               "simulation, synthesis and the energy report join it as they land.")


def add_arguments(p):
    p.add_argument("-o", "--output", default=os.path.join("out", "demo"), metavar="DIR",
                   help="output directory (default out/demo)")


def run(args):
    print("mlsnn demo (partial): the golden integer model on random networks; training, RTL, "
          "synthesis and energy are not wired into the demo yet")
    os.makedirs(args.output, exist_ok=True)
    for seed, kind in enumerate(["dense", "conv", "residual"]):
        net = ir.random_network(seed, kind=kind)
        d = os.path.join(args.output, f"random-{kind}")
        ir.save(net, d)
        x = ir.random_inputs(net, 16, seed=seed)
        res = run_reference(net, x)
        events = {l.name: int(res.counters[l.name]["ev_out"].sum()) for l in net.layers}
        print(f"  {kind:<9} T={net.timesteps} layers={len(net.layers)} -> {d}")
        print(f"            predictions {res.predictions.tolist()}")
        print(f"            events out per layer (16 inputs): {events}")
    return 0
