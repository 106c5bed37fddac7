"""Bring an snnTorch network to mlsnn through NIR (``docs/import.md`` § snnTorch example).

Trains a small snnTorch MLP of ``snn.Leaky(beta=1, reset_mechanism="subtract")`` neurons on
scikit-learn's digits (64 → hidden → 10, a ``Linear`` readout whose outputs are summed over the
T timesteps), writes it with ``snntorch.export_to_nir`` and saves the integer test images, so
that the mlsnn commands can take over::

    python examples/snntorch_digits.py -o out/snntorch          # ~3 s: digits.nir, x.npz
    mlsnn import out/snntorch/digits.nir -o out/snntorch/net -T 2 --reset soft \\
        --in-bits 5 --input-scale 0.0625 --inputs out/snntorch/x.npz
    mlsnn simulate --ir out/snntorch/net --inputs out/snntorch/x.npz --images 4 --sim icarus
    mlsnn synth --ir out/snntorch/net --target ice40-up5k

``tests/test_nir_rtl.py`` imports these functions, so what the documentation quotes is what is
tested.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from collections import OrderedDict

import numpy as np
import torch

if __package__ in (None, ""):          # run as a file: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: The float value of one integer pixel, and the pixel width: digits' pixels are 0..16.
INPUT_SCALE, IN_BITS = 1 / 16, 5


def build(hidden=16, n_in=64, n_out=10, *, seed=0):
    """The snnTorch model: ``Linear → Leaky(beta=1, subtract) → Linear`` (the readout),
    initialized from ``seed``.

    ``beta`` and ``threshold`` are per-neuron tensors: with Python scalars ``export_to_nir``
    writes 0-d arrays that NIR's type check rejects against the ``Linear``'s shape.
    """
    import snntorch as snn
    torch.manual_seed(seed)
    return torch.nn.Sequential(OrderedDict(        # the names become NIR node and layer names
        fc=torch.nn.Linear(n_in, hidden),
        lif=snn.Leaky(beta=torch.ones(hidden), threshold=torch.ones(hidden),
                      reset_mechanism="subtract", init_hidden=True),
        readout=torch.nn.Linear(hidden, n_out)))


def logits(model, x, timesteps):
    """Sum over T timesteps of the readout's outputs, the input presented at every step (the
    neurons start at 0 for every batch)."""
    from snntorch import utils
    utils.reset(model)
    return sum(model(x) for _ in range(timesteps))


def floats(x):
    """Integer pixels ``[B, ...]`` → the float input ``[B, 64]`` the model sees."""
    return torch.as_tensor(np.asarray(x).reshape(len(x), -1), dtype=torch.float32) * INPUT_SCALE


def train(model, x, y, timesteps, *, epochs=10, batch=64, lr=1e-2, seed=0):
    """Adam on the cross-entropy of :func:`logits` (snnTorch's surrogate gradient), fixed
    seed; ``x`` integer pixels, ``y`` labels."""
    torch.manual_seed(seed)
    xt, yt = floats(x), torch.as_tensor(np.asarray(y))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            loss = torch.nn.functional.cross_entropy(logits(model, xt[idx], timesteps), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def predict(model, x, timesteps):
    """snnTorch's predictions (argmax of :func:`logits`) on integer pixels ``x``."""
    with torch.no_grad():
        return logits(model, floats(x), timesteps).argmax(1).numpy()


def export(model, n_in=64):
    """``snntorch.export_to_nir`` with ``ignore_dims=[0]`` (else the input type keeps the batch
    dimension, ``[1, 64]``, and NIR's type check fails against the ``Linear``'s ``[64]``)."""
    from snntorch.export_nir import export_to_nir
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # beta = 1: tau = dt / (1 - beta) divides by zero
        return export_to_nir(model, torch.zeros(1, n_in), ignore_dims=[0])


def commands(out, *, timesteps=2, images=4, target="ice40-up5k"):
    """The mlsnn command lines (argv lists) that take over from the files :func:`main` writes
    in ``out``: import (soft reset: what ``reset_mechanism="subtract"`` meant, lost in the
    export), simulate the first ``images`` test images on Icarus, synthesize."""
    net, x = os.path.join(out, "net"), os.path.join(out, "x.npz")
    return [["mlsnn", "import", os.path.join(out, "digits.nir"), "-o", net, "-T", str(timesteps),
             "--reset", "soft", "--in-bits", str(IN_BITS), "--input-scale", str(INPUT_SCALE),
             "--inputs", x],
            ["mlsnn", "simulate", "--ir", net, "--inputs", x, "--images", str(images),
             "--sim", "icarus"],
            ["mlsnn", "synth", "--ir", net, "--target", target]]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", default="out/snntorch", metavar="DIR")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("-T", "--timesteps", type=int, default=2)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import nir
    from golden.datasets import load_dataset

    data = load_dataset("digits")             # 8x8 pixels 0..16, the mlsnn train/test split
    model = train(build(args.hidden, seed=args.seed), data.x_train, data.y_train,
                  args.timesteps, epochs=args.epochs, seed=args.seed)
    pred = predict(model, data.x_test, args.timesteps)
    os.makedirs(args.output, exist_ok=True)
    nir.write(os.path.join(args.output, "digits.nir"), export(model))
    np.savez(os.path.join(args.output, "x.npz"),
             x=data.x_test.reshape(len(data.x_test), -1), y=data.y_test)
    np.save(os.path.join(args.output, "snntorch_predictions.npy"), pred)
    print(f"snnTorch test accuracy {100 * (pred == data.y_test).mean():.2f} % "
          f"({len(pred)} images, T = {args.timesteps}); wrote {args.output}/digits.nir, x.npz, "
          f"snntorch_predictions.npy; next:")
    for cmd in commands(args.output, timesteps=args.timesteps):
        print("  " + shlex.join(cmd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
