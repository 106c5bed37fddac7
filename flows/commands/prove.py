"""`mlsnn prove`: formal proofs of the fire unit and the credit queue (yosys sat, k-induction)."""

import json
import sys

NAME = "prove"
HELP = "formal proofs (yosys sat, k-induction) of the fire unit and the credit queue"
DESCRIPTION = (
    "Prove with yosys' sat command, by temporal induction (unbounded), that hw.neuron.FireUnit "
    "(parallel, pipelined, serial, readout; with and without saturation) computes SPEC §2 "
    "(H = P + b, z = 0 if H < θ else min(N, floor(H/θ)), P' = H - z·θ, v0 at the last "
    "timestep) for every P and b of the width, in order and with its documented timing, and that "
    "hw.credit.CreditQueue never overflows, never loses, duplicates or reorders a token, and "
    "accounts its credits exactly. Each proof covers every N of --levels and θ of --thresholds "
    "(every credits 1..depth of --depths); a failed proof prints its counterexample (inputs per "
    "cycle, the properties violated) and exits 1. --mutant runs a proof on a deliberately broken "
    "unit (it must fail). Details: docs/verification.md. "
    "Example: mlsnn prove --only fire-serial --levels 1-4 --json")


def add_arguments(p):
    p.add_argument("--list", action="store_true", help="list the proofs and the mutants, then exit")
    p.add_argument("--only", metavar="NAME", action="append",
                   help="run only this proof (repeatable; default all)")
    p.add_argument("--mutant", metavar="NAME",
                   help="run the proof of this deliberately broken unit instead (must FAIL)")
    p.add_argument("--width", type=int, default=10,
                   help="potential (and bias) width of the fire unit, 4..16 (default 10)")
    p.add_argument("--levels", default="1-8", metavar="LIST",
                   help="the N's, e.g. 1-8 or 1,2,4 (each 1..16; default 1-8)")
    p.add_argument("--thresholds", metavar="LIST",
                   help="the θ's (each 1..2^(width-1)-1; default 1,2,3,32,63, those above the "
                        "width's largest θ replaced by it)")
    p.add_argument("--depths", default="2,4,8", metavar="LIST",
                   help="credit-queue depths, powers of two 2..16 (default 2,4,8)")
    p.add_argument("--v0", type=int, default=-3, help="potential after the last timestep "
                   "(default -3)")
    p.add_argument("--max-steps", type=int, default=24,
                   help="longest induction tried (default 24)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per proof (default 900)")
    p.add_argument("--keep", metavar="DIR",
                   help="keep the RTLIL, the yosys script and the logs here (one folder per proof)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args):
    import os
    from flows.prove import (MUTANTS, PROOFS, ProveParams, default_thresholds,
                             parse_int_list, run_proof)
    from golden.errors import MlsnnError
    if args.list:
        for name, proof in PROOFS.items():
            print(f"{name:16s} {proof.what}")
        for name, (proof, what, _f) in MUTANTS.items():
            print(f"{name:16s} mutant for {proof}: {what} (must FAIL)")
        return 0
    params = ProveParams(width=args.width,
                         levels=parse_int_list(args.levels, "--levels"),
                         thresholds=(parse_int_list(args.thresholds, "--thresholds")
                                     if args.thresholds is not None
                                     else default_thresholds(args.width)),
                         depths=parse_int_list(args.depths, "--depths"),
                         v0=args.v0, max_steps=args.max_steps)
    from flows.io import check_number, check_output_dir
    check_number(args.timeout, "--timeout (seconds)", minimum=0, min_open=True)
    if args.keep:
        check_output_dir(args.keep, "--keep")
    if args.mutant is not None:
        if args.mutant not in MUTANTS:
            raise MlsnnError(f"unknown mutant {args.mutant!r}; mutants: {', '.join(MUTANTS)}")
        if args.only:
            raise MlsnnError("--mutant runs its own proof; do not combine it with --only")
        names = [MUTANTS[args.mutant][0]]
    else:
        names = args.only or list(PROOFS)
        for n in names:
            if n not in PROOFS:
                raise MlsnnError(f"unknown proof {n!r}; proofs: {', '.join(PROOFS)} "
                                 f"(see mlsnn prove --list)")
    results = []
    for n in names:
        print(f"[prove] {n}{' (mutant ' + args.mutant + ')' if args.mutant else ''}: ...",
              file=sys.stderr, flush=True)
        keep = os.path.join(args.keep, args.mutant or n) if args.keep else None
        res = run_proof(n, params, mutant=args.mutant, timeout=args.timeout, keep=keep)
        print(f"[prove] {res.summary()}", file=sys.stderr, flush=True)
        results.append(res)
    failed = [r for r in results if r.status != "PASS"]
    if args.json:
        doc = {"status": "FAIL" if failed else "PASS",
               "params": {"width": params.width, "levels": list(params.levels),
                          "thresholds": list(params.thresholds), "depths": list(params.depths),
                          "v0": params.v0, "max_steps": params.max_steps},
               "proofs": [r.to_json() for r in results]}
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
    else:
        for r in results:
            print(f"{r.status}  {r.name:16s} {len(r.cases):3d} cases  {r.seconds:7.1f} s  "
                  f"{r.what}")
    if failed:
        print(f"mlsnn prove: {len(failed)} of {len(results)} proofs failed: "
              + "; ".join(r.summary() for r in failed), file=sys.stderr)
        return 1
    return 0
