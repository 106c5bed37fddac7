"""`mlsnn train`: train a float multi-level SNN with surrogate gradients."""

import json
import sys

from golden.errors import MlsnnError
from golden.ir import MAX_LEAK
from golden.train import (ARCHS, POOLS, qcfs_arch_path, save_checkpoint, save_qcfs, train,
                          train_qcfs)

NAME = "train"
HELP = "train a float multi-level SNN (--arch, --levels, --timesteps, --dataset)"
DESCRIPTION = ("Train a float multi-level spiking network (SPEC §2) with surrogate gradients and "
               "Adam, and save it as a checkpoint {config, state_dict} for 'mlsnn export'. "
               "--dataset is 'digits' (scikit-learn, 8x8, offline), 'mnist:DIR' (the four MNIST "
               "IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
               "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte in DIR, plain or .gz, with "
               "MNIST's own 60,000/10,000 split) or your own data: an .npz with arrays x "
               "[samples, features | height, width | channels, height, width] of unsigned "
               "integers (e.g. CIFAR-10 as [n, 3, 32, 32] uint8) and y [samples] of labels, or a "
               "directory with x.npy and y.npy. Split of your own data: stratified, 25 % test, "
               "--split-seed. Archs: mlp (dense hidden layer), cnn (conv -> stride-2 conv -> "
               "dense; with --pool max|avg: conv -> 2x2 pool -> conv -> 2x2 pool -> dense), vgg "
               "(a small VGG: [conv -> conv -> 2x2 pool] x 2 -> readout, --channels then twice "
               "as many; --pool max by default, or avg), sew-resnet and sparse-resnet (residual "
               "blocks). Max pooling passes the largest spike of each window on; average "
               "pooling feeds a multi-level IF neuron of its own, so both export exactly. With "
               "pooling, height and width must be multiples of 4 (8x8 digits, 28x28 MNIST, "
               "32x32 CIFAR). --leak K makes every dense and conv2d spiking layer leaky (LIF, "
               "docs/leak.md): after each fire the potential is multiplied by 1 - 2^-K, "
               "exported as the integer shift-subtract P - (P >> K). One progress line per "
               "epoch on stderr. Example: mlsnn train --arch mlp --timesteps 1 --levels 4 -o "
               "model.pt; mlsnn train --arch vgg --dataset "
               "cifar.npz -o vgg.pt. With --qcfs Q it trains instead a ReLU ANN whose "
               "activations are QCFS (seed 003: quantization-clip-floor-shift, Q levels, "
               "trainable lambda; --threshold is the initial lambda; mlp or cnn without "
               "pooling), optionally with the spike l1 penalty --spike-l1, and writes a state "
               "dict (-o) plus its architecture (ann.pt -> ann.arch.json) for 'mlsnn convert', "
               "lossless at T*N = Q: mlsnn train --qcfs 8 -o ann.pt; mlsnn convert ann.pt "
               "--arch ann.arch.json --timesteps 1 --levels 8 -o net")


def add_arguments(p):
    p.add_argument("--dataset", default="digits", metavar="digits|mnist:DIR|PATH",
                   help="'digits' (default), mnist:DIR (a directory of the four MNIST IDX "
                        "files), an .npz with x and y, or a directory with x.npy and y.npy")
    p.add_argument("--arch", default="mlp", choices=ARCHS, help="network (default: mlp)")
    p.add_argument("--timesteps", "-T", type=int, default=1, metavar="T",
                   help="timesteps T (default: 1)")
    p.add_argument("--levels", "-N", type=int, default=4, metavar="N",
                   help="spike levels N (default: 4)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs (default: 10)")
    p.add_argument("--seed", type=int, default=0,
                   help="initialisation/shuffle seed, 0..2**63-1 (default: 0)")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the stratified train/test split, 0..2**32-1 (default: 0; "
                        "mnist:DIR has its own split and ignores it)")
    p.add_argument("--hidden", type=int, default=64,
                   help="hidden dense width of mlp and cnn (default: 64)")
    p.add_argument("--channels", type=int, default=8,
                   help="convolution channels of cnn, vgg (first stage; the second has twice "
                        "as many) and the resnets (default: 8)")
    p.add_argument("--pool", choices=POOLS, default=None,
                   help="cnn and vgg: 2x2 stride-2 pooling after the convolutions, max or avg "
                        "(default: none for cnn, which keeps its stride-2 convolution as "
                        "before; max for vgg, which needs max or avg)")
    p.add_argument("--blocks", type=int, default=1,
                   help="residual blocks of the resnets (default: 1)")
    p.add_argument("--block-strides", default="", metavar="S,S,...",
                   help="resnets: the stride (1 or 2) of each residual block, comma-separated, "
                        "e.g. 1,2 (default: all 1; a stride-2 block gets a 1x1 stride-2 "
                        "shortcut convolution)")
    p.add_argument("--threshold", type=float, default=1.0,
                   help="V_th of every spiking layer, fixed (default: 1.0)")
    p.add_argument("--leak", type=int, default=0, metavar="K",
                   help=f"integer leak of every dense and conv2d spiking layer, 0..{MAX_LEAK}: "
                        f"beta = 1 - 2^-K, P <- P - (P >> K) after the fire in the IR "
                        f"(default: 0, no leak; docs/leak.md)")
    p.add_argument("--alpha", type=float, default=5.0,
                   help="sigmoid surrogate sharpness (default: 5)")
    p.add_argument("--lr", type=float, default=1e-2,
                   help="Adam learning rate, cosine-annealed (default: 0.01)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    p.add_argument("--qcfs", type=int, metavar="Q",
                   help="train a QCFS ANN with Q quantization levels for 'mlsnn convert' "
                        "instead of an SNN (seed 003; --timesteps, --levels, --alpha, --pool "
                        "and the resnet options do not apply)")
    p.add_argument("--spike-l1", type=float, default=0.0, metavar="COEFF",
                   help="with --qcfs: coefficient of the spike l1 penalty, the converted "
                        "SNN's spike values per image (seed 003 Eq. 9; default 0)")
    p.add_argument("-o", "--output", default="model.pt", metavar="model.pt",
                   help="checkpoint to write (default: model.pt)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _progress(entry):
    print(f"epoch {entry['epoch']}/{entry['epochs']}: loss {entry['loss']:.4f}, "
          f"train accuracy {100 * entry['train_accuracy']:.2f} %, "
          f"test accuracy {100 * entry['test_accuracy']:.2f} % ({entry['seconds']:.1f} s)",
          file=sys.stderr, flush=True)


def _strides(text):
    """``"1,2"`` → ``(1, 2)``; the values are checked by the model configuration."""
    if not text.strip():
        return ()
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise MlsnnError(f"--block-strides must be comma-separated integers such as 1,2, "
                         f"not {text!r}") from None


def run(args):
    from flows.io import check_number, check_output_file, check_seed
    check_seed(args.seed)
    check_seed(args.split_seed, "--split-seed", bits=32)
    for opt, value in (("--threshold", args.threshold), ("--alpha", args.alpha),
                       ("--lr", args.lr)):
        check_number(value, opt, minimum=0, min_open=True)
    strides = _strides(args.block_strides)
    if args.qcfs is not None:
        if args.leak:
            raise MlsnnError("--leak applies to the SNN; --qcfs trains an ANN (no leak)")
        return _run_qcfs(args)
    if not 0 <= args.leak <= MAX_LEAK:
        raise MlsnnError(f"--leak must be an integer in 0..{MAX_LEAK}, not {args.leak}")
    if args.spike_l1:
        raise MlsnnError("--spike-l1 needs --qcfs Q (it penalises the QCFS ANN's spikes)")
    # Before the training: a checkpoint that cannot be written would lose it.
    check_output_file(args.output)
    model, metrics = train(arch=args.arch, timesteps=args.timesteps, levels=args.levels,
                           epochs=args.epochs, seed=args.seed, progress=_progress,
                           dataset=args.dataset, hidden=args.hidden, channels=args.channels,
                           blocks=args.blocks, threshold=args.threshold, alpha=args.alpha,
                           lr=args.lr, batch_size=args.batch_size, split_seed=args.split_seed,
                           block_strides=strides, pool=args.pool, leak=args.leak)
    save_checkpoint(model, args.output, metrics=metrics)
    cfg = model.config
    if args.json:
        doc = {"checkpoint": args.output, "config": cfg.to_dict(),
               "thresholds": model.thresholds(),
               **{k: metrics[k] for k in ("test_accuracy", "train_accuracy", "loss", "seconds",
                                          "n_train", "n_test")},
               "history": metrics["history"]}
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    pooled = f" ({cfg.pool} pooling)" if cfg.pool != "none" else ""
    leaky = f" leak={cfg.leak}" if cfg.leak else ""
    print(f"{cfg.arch}{pooled} T={cfg.timesteps} N={cfg.levels}{leaky} on {cfg.dataset}: test "
          f"accuracy {100 * metrics['test_accuracy']:.2f} % ({metrics['n_test']} samples), "
          f"saved {args.output}")
    return 0


def _run_qcfs(args):
    """``--qcfs Q``: a QCFS ANN, saved as a state dict plus its architecture."""
    from flows.io import check_number, check_output_file

    check_number(args.spike_l1, "--spike-l1", minimum=0)
    if args.pool not in (None, "none"):
        raise MlsnnError("--qcfs trains mlp or cnn without pooling, not --pool " + args.pool)
    check_output_file(args.output)
    check_output_file(qcfs_arch_path(args.output))
    model, layers, metrics = train_qcfs(
        levels=args.qcfs, spike_l1=args.spike_l1, arch=args.arch, epochs=args.epochs,
        seed=args.seed, progress=_progress, dataset=args.dataset, hidden=args.hidden,
        channels=args.channels, lam=args.threshold, lr=args.lr, batch_size=args.batch_size,
        split_seed=args.split_seed)
    arch = save_qcfs(model, layers, args.output)
    if args.json:
        doc = {"state_dict": args.output, "arch": arch, "layers": layers,
               **{k: metrics[k] for k in ("test_accuracy", "train_accuracy", "loss", "seconds",
                                          "n_train", "n_test", "spikes_per_image", "lambdas",
                                          "levels", "input_scale", "dataset")},
               "history": metrics["history"]}
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    lams = ", ".join(f"{v:.4g}" for v in metrics["lambdas"])
    print(f"QCFS {args.arch} Q={args.qcfs} on {metrics['dataset']}: test accuracy "
          f"{100 * metrics['test_accuracy']:.2f} % ({metrics['n_test']} samples), lambda "
          f"{lams}, {metrics['spikes_per_image']:.1f} spike values per image; saved "
          f"{args.output} and {arch}")
    print(f"convert losslessly (T*N = Q): mlsnn convert {args.output} --arch {arch} "
          f"--timesteps 1 --levels {args.qcfs} -o net")
    return 0
