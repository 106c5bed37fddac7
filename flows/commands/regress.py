"""`mlsnn regress`: the nightly random regression (golden model vs RTL on random networks)."""

import json
import os
import sys
import time

from golden.errors import MlsnnError

NAME = "regress"
HELP = "run many random networks through the golden model and the RTL; report failures"
DESCRIPTION = (
    "Random regression: for every seed of --seeds, draw a random network (non-square inputs, "
    "conv readouts, negative v0, unusual barrier weights and forced narrow potential widths "
    "among the options drawn from the seed), random inputs and a hardware variant (serial or "
    "parallel discharge and synapse, tiny FIFOs, random input gaps, output stalls and queue "
    "throttling), run it on the golden model and the RTL (--sim) and compare every token, "
    "prediction and counter. Progress on stderr; every failure prints a one-line reproducer "
    "and, with -o, saves its network and inputs. --jobs N runs on a local dask.distributed "
    "cluster of N processes, --scheduler on an existing one. Exit status 1 when any network "
    "failed. Example: mlsnn regress --seeds 0:100 --jobs 2 --junit out/junit.xml -o out/regress")


def add_arguments(p):
    p.add_argument("--seeds", default="0:20", metavar="A:B",
                   help="seeds A..B-1 (default 0:20)")
    p.add_argument("--shard", metavar="I/N", default=None,
                   help="run only the seeds s with s mod N == I (split a run over machines)")
    p.add_argument("--sim", choices=["amaranth", "icarus", "verilator"], default="amaranth",
                   help="RTL simulator (default amaranth)")
    p.add_argument("--images", type=int, default=3, help="random inputs per network (default 3)")
    p.add_argument("--jobs", type=int, default=1,
                   help="parallel workers on a local Dask cluster (default 1: in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="address of a running Dask scheduler (tcp://host:8786) to run on")
    p.add_argument("--junit", metavar="FILE", default=None,
                   help="write a JUnit XML report (one testcase per network)")
    p.add_argument("-o", "--output", metavar="DIR", default=None,
                   help="save every failing network (network.json/.npz, inputs.npz, "
                        "regress.json) under DIR/seed<S>")
    p.add_argument("--json", action="store_true",
                   help='print {"networks", "passed", "failed", "undetermined", "seconds", '
                        '"seconds_per_network", "failures": [{"seed", "reproducer", '
                        '"network_dir", "message"}]}')


class _Progress:
    """One stderr line per finished network: k/N, failures so far, elapsed, its seconds."""

    def __init__(self, total, args):
        self.total, self.args = total, args
        self.k = self.failed = self.undetermined = 0
        self.t0 = time.monotonic()

    def __call__(self, res):
        from flows.regress import failed
        self.k += 1
        self.failed += failed(res)
        self.undetermined += res["status"] == "undetermined"
        el = time.monotonic() - self.t0
        print(f"regress: {self.k}/{self.total} done, {self.failed} failed, "
              f"{self.undetermined} undetermined, {el:.0f} s elapsed (seed {res['seed']}: "
              f"{res['status']}, {res['seconds']:.1f} s)", file=sys.stderr, flush=True)
        if failed(res):
            _annotate(res, self.args)
            first = res["messages"][0] if res["messages"] else ""
            print(f"regress: FAIL seed {res['seed']}: {first}", file=sys.stderr)
            print(f"regress:   reproduce: {res['reproducer']}", file=sys.stderr, flush=True)


def _annotate(res, args):
    """Save a failure (with -o) and attach its reproducer."""
    from flows.regress import RegressConfig, save_failure
    if "reproducer" in res:
        return
    cfg = RegressConfig(**res["config"])
    res["network_dir"] = None
    if args.output:
        res["network_dir"] = save_failure(res, args.output, args.sim, args.images)
    res["reproducer"] = cfg.to_cli(args.sim, args.images, directory=res["network_dir"])


def run(args):
    from flows import regress as rg

    seeds = rg.parse_seeds(args.seeds)
    shard = rg.parse_shard(args.shard) if args.shard is not None else None
    if args.jobs < 1:
        raise MlsnnError(f"--jobs must be at least 1, not {args.jobs}")
    if args.images < 1:
        raise MlsnnError(f"--images must be at least 1, not {args.images}")
    if args.output and os.path.exists(args.output) and not os.path.isdir(args.output):
        raise MlsnnError(f"{args.output} exists and is not a directory")
    if args.junit and os.path.isdir(args.junit):
        raise MlsnnError(f"--junit {args.junit} is a directory, not a file")
    # Output paths before the (long) run: an unwritable one would lose its results.
    from flows.io import check_output_dir
    if args.output:
        check_output_dir(args.output)
    if args.junit:
        check_output_dir(os.path.dirname(os.path.abspath(args.junit)), "--junit")
    rg.check_simulator(args.sim)
    todo = rg.shard_seeds(seeds, shard)
    if not todo:
        raise MlsnnError(f"shard {args.shard} of seeds {args.seeds} holds no seed")
    t0 = time.monotonic()
    progress = _Progress(len(todo), args)
    results = rg.run_seeds(todo, args.sim, args.images, jobs=args.jobs,
                           scheduler=args.scheduler, on_result=progress)
    seconds = time.monotonic() - t0
    for res in results:
        if rg.failed(res):
            _annotate(res, args)
    doc = rg.summary_json(results, seconds)
    if args.junit:
        d = os.path.dirname(os.path.abspath(args.junit))
        os.makedirs(d, exist_ok=True)
        with open(args.junit, "w") as f:
            f.write(rg.junit_xml(results, args.sim, seconds))
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"regress ({args.sim}, seeds {args.seeds}"
              + (f", shard {args.shard}" if shard else "") + f"): {doc['networks']} networks, "
              f"{doc['passed']} passed, {doc['failed']} failed, {doc['undetermined']} "
              f"undetermined, {doc['seconds']:.1f} s ({doc['seconds_per_network']:.2f} s per "
              f"network); cycles compared on {doc['cycles_compared']}, not on "
              f"{doc['cycles_not_compared']} ({doc['cycles_refused']} refused by the cycle "
              f"model)")
        for f_ in doc["failures"]:
            print(f"FAIL seed {f_['seed']}: {f_['message']}")
            print(f"  reproduce: {f_['reproducer']}")
    return 1 if doc["failed"] else 0
