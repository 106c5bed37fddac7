"""`mlsnn early-exit`: fit the early-exit thresholds alpha_t of a network (docs/early-exit.md)."""

import json
import os
import sys

import numpy as np

from golden.errors import MlsnnError

NAME = "early-exit"
HELP = "fit the input-aware early exit (alpha_t per timestep) under an average-timestep budget"
DESCRIPTION = ("Fit the thresholds alpha_1 .. alpha_{T-1} of the input-aware early exit "
               "(docs/early-exit.md; seed 004 §3.3, Eqs. 17-18 on the margin between the two "
               "largest readout potentials) on the training split of a dataset, so that the "
               "average number of timesteps stays within --budget, and write the network with "
               "the field 'early_exit' (and the test split as inputs.npz) to -o. Reports "
               "accuracy and average timesteps on the test split with and without the exit. "
               "Example: mlsnn early-exit --ir out/net --dataset digits --budget 2.5 -o out/net2")


def add_arguments(p):
    p.add_argument("--ir", required=True, metavar="network.json",
                   help="the network (network.json, or its directory)")
    p.add_argument("--dataset", default="digits", metavar="digits|mnist:DIR|PATH",
                   help="dataset whose training split fits alpha and whose test split is "
                        "reported (default digits)")
    p.add_argument("--budget", required=True, type=float, metavar="GAMMA",
                   help="largest average number of timesteps per inference, 1 .. T")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the dataset's train/test split (default 0, as 'mlsnn train')")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def fit_network(net, data, budget):
    """``(net with early_exit, summary)``: alpha fitted on ``data``'s training split,
    evaluated on its test split."""
    from golden.early_exit import evaluate, fit_alpha

    def inputs(a):
        if tuple(a.shape[1:]) != tuple(net.input.shape) and \
                int(np.prod(a.shape[1:])) == net.input.size:
            a = a.reshape((-1,) + tuple(net.input.shape))
        return net.check_inputs(a)
    x_tr, x_te = inputs(data.x_train), inputs(data.x_test)
    alpha, info = fit_alpha(net, x_tr, data.y_train, budget=budget)
    net2 = net.replace(early_exit={"confidence": "margin", "alpha": alpha})
    fixed = evaluate(net.replace(early_exit=None), x_te, data.y_test)
    with_exit = evaluate(net2, x_te, data.y_test)
    return net2, {
        "alpha": alpha, "budget": budget, "timesteps": net.timesteps, "dataset": data.name,
        "fit": {"train_accuracy": info["accuracy"], "train_avg_timesteps": info["avg_timesteps"],
                "alpha_base": info["alpha_base"], "beta": info["beta"], "delta": info["delta"],
                "mean_margins": info["mean_margins"]},
        "test": {"fixed_T": fixed, "early_exit": with_exit, "images": int(len(data.y_test))},
    }, x_te


def run(args):
    from flows.io import check_output_dir, load_network
    from golden import ir
    from golden.datasets import load_dataset

    net = load_network(args.ir)
    check_output_dir(args.output)
    data = load_dataset(args.dataset, args.split_seed)
    if data.num_classes > net.n_classes:
        raise MlsnnError(f"dataset {args.dataset}: labels up to {data.num_classes - 1}, but the "
                         f"network has {net.n_classes} classes")
    net2, doc, x_te = fit_network(net, data, args.budget)
    doc["network"] = ir.save(net2, args.output)
    doc["inputs"] = os.path.join(args.output, "inputs.npz")
    np.savez(doc["inputs"], x=x_te, y=data.y_test)
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    f, e = doc["test"]["fixed_T"], doc["test"]["early_exit"]
    print(f"alpha (t = 1 .. {net.timesteps - 1}): {' '.join(map(str, doc['alpha']))}")
    print(f"train: accuracy {doc['fit']['train_accuracy']:.4f}, average timesteps "
          f"{doc['fit']['train_avg_timesteps']:.3f} (budget {args.budget:g})")
    print(f"test ({doc['test']['images']} images): fixed T = {net.timesteps}: accuracy "
          f"{f['accuracy']:.4f}; early exit: accuracy {e['accuracy']:.4f}, average timesteps "
          f"{e['avg_timesteps']:.3f}, histogram {e['timesteps_histogram']}")
    print(f"wrote {doc['network']} and {doc['inputs']}")
    return 0
