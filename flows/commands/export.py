"""`mlsnn export`: float checkpoint → integer IR, with the accuracy drop."""

import json
import os
import sys

import numpy as np

from golden.errors import MlsnnError

NAME = "export"
HELP = "float model (model.pt) -> IR (network.json + .npz); prints the accuracy drop"
DESCRIPTION = ("Quantize a trained float model (from 'mlsnn train') to the integer IR: per-layer "
               "integer weights, biases and thresholds (exact thresholds, rounded weights). "
               "Writes DIR/network.json, DIR/network.npz and DIR/inputs.npz (the test split: "
               "arrays x and y), and reports float and integer-golden test accuracy. "
               "Example: mlsnn export model.pt -o out/net")


def add_arguments(p):
    p.add_argument("model", metavar="model.pt", help="checkpoint written by 'mlsnn train'")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--w-bits", type=int, default=8, help="signed weight width (default 8)")
    p.add_argument("--dataset", metavar="digits|mnist:DIR|PATH",
                   help="evaluate on the test split of this dataset (default: the one the model "
                        "was trained on, as recorded in the checkpoint)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _dataset(cfg, dataset):
    """The dataset to evaluate on: ``dataset`` if given, else the one of the checkpoint."""
    from golden.datasets import dataset_spec, load_dataset

    if dataset is None:
        if cfg.dataset == "digits" and not cfg.dataset_path:
            dataset = "digits"
        elif not cfg.dataset_path:
            raise MlsnnError(f"the model was trained on '{cfg.dataset}', and its checkpoint "
                             f"does not record where that dataset is: give it with --dataset "
                             f"PATH")
        elif not os.path.exists(cfg.dataset_path):
            raise MlsnnError(f"the model was trained on {cfg.dataset_path}, which no longer "
                             f"exists: give the dataset with --dataset PATH")
        else:
            dataset = dataset_spec(cfg.dataset, cfg.dataset_path)
    data = load_dataset(dataset, cfg.split_seed)
    if tuple(data.input_shape) != tuple(cfg.input_shape):
        raise MlsnnError(f"dataset {dataset}: samples of shape {tuple(data.input_shape)}, but the "
                         f"model takes {tuple(cfg.input_shape)}")
    if data.num_classes > cfg.num_classes:
        raise MlsnnError(f"dataset {dataset}: labels up to {data.num_classes - 1}, but the model "
                         f"has {cfg.num_classes} classes")
    return data


def export_checkpoint(model_path, out_dir, *, w_bits=8, dataset=None):
    """Export, evaluate on the test split and write the files; return the summary dict.

    The test split is that of ``dataset`` (``"digits"``, ``"mnist:DIR"`` or a path) when given,
    else of the dataset the model was trained on (its path is recorded in the checkpoint).
    """
    from flows.io import check_output_dir
    from golden import ir
    from golden.export import export
    from golden.reference import run
    from golden.train import evaluate, load_checkpoint

    check_output_dir(out_dir)
    model = load_checkpoint(model_path)
    cfg = model.config
    data = _dataset(cfg, dataset)
    net, report = export(model, w_bits=w_bits)
    x = net.check_inputs(data.x_test.reshape((-1,) + net.input.shape))
    path = ir.save(net, out_dir)
    np.savez(os.path.join(out_dir, "inputs.npz"), x=x, y=data.y_test)
    float_acc = evaluate(model, data.x_test, data.y_test)
    res = run(net, x, record_events=False)
    golden_acc = float((res.predictions == data.y_test).mean())
    return {
        "network": path, "inputs": os.path.join(out_dir, "inputs.npz"),
        "arch": cfg.arch, "timesteps": cfg.timesteps, "levels": cfg.levels,
        "dataset": data.name,
        "w_bits": w_bits, "n_test": int(len(data.y_test)),
        "float_accuracy": float_acc, "golden_accuracy": golden_acc,
        "drop_points": 100.0 * (float_acc - golden_acc),
        "layers": [{"name": l.name, "kind": l.label,
                    "threshold": getattr(l, "threshold", None),
                    "potential_width": net.info(l.name).width,
                    **{k: v for k, v in report[l.name].items() if k in ("clipped", "q")}}
                   for l in net.layers],
    }


def run(args):
    doc = export_checkpoint(args.model, args.output, w_bits=args.w_bits, dataset=args.dataset)
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"exported {doc['arch']} (T={doc['timesteps']}, N={doc['levels']}, "
          f"W_BITS={doc['w_bits']}) to {doc['network']}")
    for l in doc["layers"]:
        extra = f"  θ={l['threshold']}" if l["threshold"] is not None else ""
        clip = f"  ({l['clipped']} weights clipped)" if l.get("clipped") else ""
        print(f"  {l['name']:<12} {l['kind']:<13} width {l['potential_width']:>2}{extra}{clip}")
    print(f"test accuracy on {doc['n_test']} samples of {doc['dataset']}: "
          f"float {100 * doc['float_accuracy']:.2f} %, "
          f"integer golden {100 * doc['golden_accuracy']:.2f} % "
          f"(drop {doc['drop_points']:+.2f} points)")
    print(f"test inputs written to {doc['inputs']} (arrays x, y)")
    return 0
