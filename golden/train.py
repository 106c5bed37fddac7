"""Float multi-level SNNs: architectures, datasets, surrogate-gradient training, checkpoints.

Models are built from :class:`golden.neuron.MultiLevelIF` and described layer by layer in the
vocabulary of the IR (:mod:`golden.ir`, SPEC §6), so that an exporter can walk them:

- ``dense`` / ``conv2d``: a ``torch.nn.Linear`` / ``torch.nn.Conv2d`` (the synapses, with bias)
  followed by a :class:`MultiLevelIF` (the neurons);
- ``join``: a residual join of two streams; ``mode="sew"`` adds the two float streams (no neuron,
  SEW-ResNet); ``mode="barrier"`` adds them and feeds a barrier :class:`MultiLevelIF` with the
  straight-through estimator (Sparse-ResNet, seed 000 §4.4);
- ``maxpool2d``: k×k max pooling, stride k, of the spike values z·θ of each timestep (no neuron):
  since θ > 0 this is θ·max z, exactly what the integer ``maxpool2d`` computes on the levels;
- ``avgpool2d``: k×k average pooling, stride k, of each timestep's values followed by a
  :class:`MultiLevelIF` of its own (same V_th and N as the other layers). The integer
  ``avgpool2d`` sums the window's levels into its potential, so with θ_int = k²·θ/θ_in (the 1/k²
  folded into the threshold; k² when θ_in = θ) it is exact;
- the last layer is the dense readout: it integrates and never fires; its output (the logits)
  is its potential after T timesteps, ``Σ_t (W·x(t) + b)`` (SPEC §3, readout, v0 = 0).

Every spiking layer, barrier and average pool uses the same fixed ``V_th = threshold`` (default
1.0, not trained) and the same N, so that every stream carries values of the same scale
θ = V_th/N (a SEW join requires it), a barrier's integer threshold is 1 with stream weights
(1, 1) and an average pool's is k².

Input (direct encoding, SPEC §3): the network input is an unsigned integer tensor (pixels); the
float model sees ``pixel · input_scale`` at every timestep, where ``input_scale`` is a power of two
recorded in the config (1/16 for digits, whose pixels are 0..16, so a white pixel is V_th).

QCFS ANNs (seed 003, docs/convert.md § QCFS training): :func:`train_qcfs` trains an
``nn.Sequential`` whose activations are :class:`QCFS` (quantization-clip-floor-shift with a
trainable λ and Q levels) with an optional spike ℓ1 penalty; :func:`save_qcfs` writes it as a
state dict plus an architecture file that ``mlsnn convert`` reads, converting losslessly at
T·N = Q.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .datasets import (MAX_IN_BITS, Dataset, _dataset_path, dataset_from_arrays,
                       load_dataset, load_digits_dataset, load_numpy_dataset)
from .errors import MlsnnError
from .ir import MAX_LEAK
from .neuron import MultiLevelIF

__all__ = [
    "ARCHS", "ModelConfig", "LayerSpec", "SpikingNet", "Dataset", "build_model",
    "load_digits_dataset", "dataset_from_arrays", "load_numpy_dataset", "load_dataset",
    "train", "evaluate", "save_checkpoint", "load_checkpoint",
    "QCFS_ARCHS", "qcfs", "QCFS", "qcfs_layers", "build_qcfs", "qcfs_forward", "train_qcfs",
    "qcfs_arch_path", "save_qcfs",
]

ARCHS = ("mlp", "cnn", "vgg", "sew-resnet", "sparse-resnet")
#: ``pool`` of :class:`ModelConfig`: no pooling (cnn: a stride-2 convolution instead), max or
#: average pooling.
POOLS = ("none", "max", "avg")
#: The pool option of each arch when none is given (cnn: none, as before pooling existed, so
#: that older checkpoints keep their meaning).
DEFAULT_POOL = {"cnn": "none", "vgg": "max"}
POOL_KERNEL = 2
POOL_KINDS = {"max": "maxpool2d", "avg": "avgpool2d"}
CHECKPOINT_FORMAT = "mlsnn-float-model"
CHECKPOINT_VERSION = 1
MAX_LEVELS = 255                    # the IR's limit on N


def _pos_int(name, value, maximum=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise MlsnnError(f"{name} must be a positive integer, not {value!r}")
    if value < 1:
        raise MlsnnError(f"{name} must be a positive integer, not {value!r}")
    if maximum is not None and value > maximum:
        raise MlsnnError(f"{name} must be at most {maximum}, not {value!r}")
    return int(value)


def _pos_float(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise MlsnnError(f"{name} must be a positive number, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise MlsnnError(f"{name} must be a positive number, not {value!r}")
    return float(value)


# -- configuration and model ------------------------------------------------------------------

@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model (saved in every checkpoint).

    Parameters
    ----------
    arch : str
        One of :data:`ARCHS`.
    input_shape : tuple of int
        ``(F,)`` or ``(C, H, W)``, the shape of one sample (no batch axis).
    num_classes : int
        Outputs of the readout.
    timesteps, levels : int
        T and N of every spiking layer.
    threshold : float
        V_th of every spiking layer and barrier (fixed, not trained); θ = V_th / N.
    alpha : float
        Sigmoid surrogate sharpness.
    hidden : int
        Width of the hidden dense layer (``mlp``, ``cnn``).
    channels : int
        Channels of the first convolution (``cnn``: second conv has twice as many; ``vgg``:
        the two convolutions of the first stage, twice as many in the second) and of every
        convolution of the residual networks.
    pool : str
        ``cnn`` and ``vgg``: one of :data:`POOLS`, the 2×2 stride-2 pooling after the
        convolutions (see :func:`train`); ``""`` (the default, and what older checkpoints load
        as) is the arch's default, :data:`DEFAULT_POOL` (cnn ``"none"``, vgg ``"max"``); the
        other archs have ``"none"`` only. ``vgg`` needs ``"max"`` or ``"avg"``.
    blocks : int
        Residual blocks (``sew-resnet``, ``sparse-resnet``).
    block_strides : tuple of int
        Stride (1 or 2) of each residual block, ``()`` (the default, and what older
        checkpoints load as) for all 1. A stride-2 block is a downsampling block as in
        ResNet: its first conv has stride 2 and doubles the channels, and its shortcut is a
        1×1 stride-2 conv followed by a :class:`MultiLevelIF` (layer ``b<i>_short``) instead
        of the identity.
    input_scale : float
        Float value of one input unit (power of two).
    in_bits : int
        Width of an input value (pixel) in the integer IR.
    dataset : str
        Name of the dataset the model was trained on.
    dataset_path : str
        Absolute path of that dataset when it is a file or directory of the user's (``""``
        for the built-in digits, and in checkpoints of older versions): ``mlsnn export``
        evaluates the exported network on its test split.
    split_seed : int
        Seed of the stratified train/test split.
    leak : int
        The integer leak k of every dense and conv2d spiking layer (docs/leak.md; the readout,
        barriers and average pools have none): 0 (the default, and what older checkpoints load
        as) is the IF neuron, k in 1..30 multiplies the potential by β = 1 − 2^−k after every
        fire.
    """

    arch: str
    input_shape: tuple
    num_classes: int
    timesteps: int = 1
    levels: int = 4
    threshold: float = 1.0
    alpha: float = 5.0
    hidden: int = 64
    channels: int = 8
    blocks: int = 1
    block_strides: tuple = ()
    input_scale: float = 1.0 / 16
    in_bits: int = 5
    dataset: str = "digits"
    split_seed: int = 0
    dataset_path: str = ""
    pool: str = ""
    leak: int = 0

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise MlsnnError(f"arch must be one of {', '.join(ARCHS)}, not {self.arch!r}")
        shape = self.input_shape
        if not isinstance(shape, (tuple, list)) or len(shape) not in (1, 3):
            raise MlsnnError(f"input_shape must be (features,) or (channels, height, width), "
                             f"not {shape!r}")
        object.__setattr__(self, "input_shape",
                           tuple(_pos_int("input_shape", s) for s in shape))
        if self.arch != "mlp" and len(self.input_shape) != 3:
            raise MlsnnError(f"arch {self.arch!r} needs image inputs (x of shape [samples, "
                             f"height, width] or [samples, channels, height, width]), but the "
                             f"samples are flat vectors of shape {self.input_shape}")
        _pos_int("num_classes", self.num_classes)
        _pos_int("timesteps", self.timesteps, 1024)
        _pos_int("levels", self.levels, MAX_LEVELS)
        object.__setattr__(self, "threshold", _pos_float("threshold", self.threshold))
        object.__setattr__(self, "alpha", _pos_float("alpha", self.alpha))
        _pos_int("hidden", self.hidden)
        _pos_int("channels", self.channels)
        _pos_int("blocks", self.blocks, 8)
        strides = self.block_strides
        if not isinstance(strides, (tuple, list)) or any(
                isinstance(v, bool) or v not in (1, 2) for v in strides):
            raise MlsnnError(f"block_strides must be a list of strides 1 or 2, one per residual "
                             f"block, not {strides!r}")
        object.__setattr__(self, "block_strides", tuple(int(v) for v in strides))
        if self.block_strides:
            if self.arch not in ("sew-resnet", "sparse-resnet"):
                raise MlsnnError(f"block_strides applies to the residual networks only, not "
                                 f"arch {self.arch!r}")
            if len(self.block_strides) != self.blocks:
                raise MlsnnError(f"block_strides must give one stride per residual block "
                                 f"({self.blocks}), not {len(self.block_strides)}")
        pool = self.pool
        if pool == "":
            pool = DEFAULT_POOL.get(self.arch, "none")
        if not isinstance(pool, str) or pool not in POOLS:
            raise MlsnnError(f"pool must be one of {', '.join(POOLS)}, not {pool!r}")
        if pool != "none" and self.arch not in DEFAULT_POOL:
            raise MlsnnError(f"pool applies to arch cnn and vgg only, not arch {self.arch!r}")
        if pool == "none" and self.arch == "vgg":
            raise MlsnnError("arch 'vgg' pools after every stage: pool must be max or avg, "
                             "not 'none'")
        object.__setattr__(self, "pool", pool)
        object.__setattr__(self, "input_scale", _pos_float("input_scale", self.input_scale))
        _pos_int("in_bits", self.in_bits, MAX_IN_BITS)
        if not isinstance(self.dataset, str):
            raise MlsnnError(f"dataset must be a string, not {self.dataset!r}")
        if not isinstance(self.dataset_path, str):
            raise MlsnnError(f"dataset_path must be a string, not {self.dataset_path!r}")
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int):
            raise MlsnnError(f"split_seed must be an integer, not {self.split_seed!r}")
        if isinstance(self.leak, bool) or not isinstance(self.leak, int) or \
                not 0 <= self.leak <= MAX_LEAK:
            raise MlsnnError(f"leak must be an integer in 0..{MAX_LEAK}, not {self.leak!r}")

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["block_strides"] = list(self.block_strides)
        return d

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names - {"thresholds"})
        if unknown:
            raise MlsnnError(f"checkpoint config has unknown field(s) {', '.join(unknown)}")
        missing = sorted(n for n in ("arch", "input_shape", "num_classes") if n not in d)
        if missing:
            raise MlsnnError(f"checkpoint config lacks field(s) {', '.join(missing)}")
        return cls(**{k: (tuple(v) if k in ("input_shape", "block_strides") else v)
                      for k, v in d.items() if k in names})


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a :class:`SpikingNet`, in IR terms (SPEC §6).

    ``kind`` is ``"dense"``, ``"conv2d"``, ``"join"``, ``"maxpool2d"`` or ``"avgpool2d"``;
    ``inputs`` names the input layers (``"input"`` is the network input); ``mode`` is ``"sew"``
    or ``"barrier"`` for joins; ``kernel`` is the window (and stride) of pools; ``readout``
    marks the last layer. The synapses of dense/conv2d layers are ``model.synapses[name]``; the
    neurons of spiking layers, barriers and average pools ``model.neurons[name]``.
    """

    name: str
    kind: str
    inputs: tuple
    mode: str | None = None
    readout: bool = False
    kernel: int | None = None


class SpikingNet(nn.Module):
    """A float multi-level SNN described by :class:`LayerSpec` s (see the module docstring).

    Members
    -------
    config : ModelConfig
    layers : tuple of LayerSpec
        In topological order; the last one is the readout.
    synapses : torch.nn.ModuleDict
        ``torch.nn.Linear`` / ``torch.nn.Conv2d`` of each dense/conv2d layer, by name.
    neurons : torch.nn.ModuleDict
        :class:`MultiLevelIF` of each spiking layer, barrier join and average pool, by name.
    """

    def __init__(self, config, layers, synapses, neurons):
        super().__init__()
        self.config = config
        self.layers = tuple(layers)
        self.synapses = nn.ModuleDict(synapses)
        self.neurons = nn.ModuleDict(neurons)

    def encode(self, pixels):
        """Raw unsigned integer inputs ``[B, *input_shape]`` → float inputs (× input_scale)."""
        x = torch.as_tensor(np.asarray(pixels) if not isinstance(pixels, torch.Tensor)
                            else pixels)
        return x.to(torch.float32) * self.config.input_scale

    def forward(self, x, *, record=None):
        """Logits ``[B, num_classes]`` of float inputs ``x`` ``[B, *input_shape]``.

        The same ``x`` is presented at each of the T timesteps (direct encoding). If ``record``
        is a dict, it receives, by layer name, the detached output of every layer: the float
        values z·θ ``[T, B, ...]`` of spiking layers, joins and pools, the logits of the
        readout.
        """
        cfg = self.config
        if x.dim() != len(cfg.input_shape) + 1 or tuple(x.shape[1:]) != cfg.input_shape:
            raise MlsnnError(f"model input must have shape [batch, "
                             f"{', '.join(map(str, cfg.input_shape))}], not {tuple(x.shape)}")
        steps, batch = cfg.timesteps, x.shape[0]
        values = {"input": x.unsqueeze(0).expand(steps, *x.shape)}
        logits = None
        for spec in self.layers:
            if spec.kind == "join":
                a, b = (values[s] for s in spec.inputs)
                out = a + b if spec.mode == "sew" else self.neurons[spec.name](a + b)
            elif spec.kind in ("maxpool2d", "avgpool2d"):
                inp = values[spec.inputs[0]]
                flat = inp.reshape(steps * batch, *inp.shape[2:])
                if spec.kind == "maxpool2d":
                    pooled = nn.functional.max_pool2d(flat, spec.kernel)
                else:
                    pooled = nn.functional.avg_pool2d(flat, spec.kernel)
                out = pooled.reshape(steps, batch, *pooled.shape[1:])
                if spec.kind == "avgpool2d":
                    out = self.neurons[spec.name](out)
            else:
                inp = values[spec.inputs[0]]
                flat = inp.reshape(steps * batch, *inp.shape[2:])
                if spec.kind == "dense":
                    flat = flat.flatten(1)
                cur = self.synapses[spec.name](flat)
                cur = cur.reshape(steps, batch, *cur.shape[1:])
                if spec.readout:
                    logits = out = cur.sum(0)
                else:
                    out = self.neurons[spec.name](cur)
            values[spec.name] = out
            if record is not None:
                record[spec.name] = out.detach()
        return logits

    def thresholds(self):
        """V_th of every spiking layer, barrier and average pool, by layer name."""
        return {name: n.threshold for name, n in self.neurons.items()}

    @torch.no_grad()
    def predict(self, pixels, batch_size=512):
        """Predicted classes (argmax, lowest index wins ties) of raw integer inputs."""
        self.eval()
        x = self.encode(pixels)
        return torch.cat([self(x[i:i + batch_size]).argmax(1)
                          for i in range(0, len(x), batch_size)])


def build_model(config):
    """A freshly initialised :class:`SpikingNet` for a :class:`ModelConfig`."""
    cfg = config
    neuron = dict(levels=cfg.levels, threshold=cfg.threshold, alpha=cfg.alpha)
    layers, syn, neu = [], {}, {}

    def spiking(name, kind, src, module):
        layers.append(LayerSpec(name, kind, (src,)))
        syn[name] = module
        neu[name] = MultiLevelIF(**neuron, leak=cfg.leak)
        return name

    def join(name, a, b, mode):
        layers.append(LayerSpec(name, "join", (a, b), mode=mode))
        if mode == "barrier":
            neu[name] = MultiLevelIF(**neuron, surrogate="ste")
        return name

    shape = cfg.input_shape
    n_in = math.prod(shape)
    if cfg.arch == "mlp":
        last = spiking("fc1", "dense", "input", nn.Linear(n_in, cfg.hidden))
        n_last = cfg.hidden
    elif cfg.arch == "cnn" and cfg.pool == "none":
        c, h, w = shape
        ch = cfg.channels
        spiking("conv1", "conv2d", "input", nn.Conv2d(c, ch, 3, stride=1, padding=1))
        spiking("conv2", "conv2d", "conv1", nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1))
        h2, w2 = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
        last = spiking("fc1", "dense", "conv2", nn.Linear(2 * ch * h2 * w2, cfg.hidden))
        n_last = cfg.hidden
    elif cfg.arch in ("cnn", "vgg"):
        # 3x3 stride-1 padding-1 convolutions keep the map size, so that each 2x2 pool tiles it
        # whenever the input's height and width are multiples of 4 (two pools).
        c, h, w = shape
        ch = cfg.channels
        stages = (("conv1",), ("conv2",)) if cfg.arch == "cnn" else \
            (("conv1_1", "conv1_2"), ("conv2_1", "conv2_2"))
        last = "input"
        for s, convs in enumerate(stages, start=1):
            out = ch * s
            for name in convs:
                last = spiking(name, "conv2d", last, nn.Conv2d(c, out, 3, stride=1, padding=1))
                c = out
            k = POOL_KERNEL
            if h % k or w % k:
                raise MlsnnError(f"layer 'pool{s}': the {k}x{k} window (stride {k}) does not "
                                 f"tile the {h}x{w} output of '{last}' ({h} and {w} must be "
                                 f"multiples of {k}); arch {cfg.arch} with {cfg.pool} pooling "
                                 f"needs inputs whose height and width are multiples of "
                                 f"{k ** len(stages)}, not {shape[1]}x{shape[2]}")
            kind = POOL_KINDS[cfg.pool]
            layers.append(LayerSpec(f"pool{s}", kind, (last,), kernel=k))
            if kind == "avgpool2d":
                neu[f"pool{s}"] = MultiLevelIF(**neuron)
            last, h, w = f"pool{s}", h // k, w // k
        n_last = c * h * w
        if cfg.arch == "cnn":
            last = spiking("fc1", "dense", last, nn.Linear(n_last, cfg.hidden))
            n_last = cfg.hidden
    else:
        c, h, w = shape
        ch = cfg.channels
        mode = "sew" if cfg.arch == "sew-resnet" else "barrier"
        last = spiking("stem", "conv2d", "input", nn.Conv2d(c, ch, 3, stride=1, padding=1))
        for i, stride in enumerate(cfg.block_strides or (1,) * cfg.blocks, start=1):
            # A stride-2 block halves the map and doubles the channels (ResNet); its shortcut
            # is then a spiking 1x1 stride-2 conv, so that both streams carry the same scale θ.
            out = ch * stride
            a = spiking(f"b{i}_conv1", "conv2d", last,
                        nn.Conv2d(ch, out, 3, stride=stride, padding=1))
            b = spiking(f"b{i}_conv2", "conv2d", a, nn.Conv2d(out, out, 3, padding=1))
            short = last
            if stride != 1:
                short = spiking(f"b{i}_short", "conv2d", last,
                                nn.Conv2d(ch, out, 1, stride=stride, padding=0))
                h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
            last = join(f"b{i}_join", b, short, mode)
            ch = out
        n_last = ch * h * w
    layers.append(LayerSpec("readout", "dense", (last,), readout=True))
    syn["readout"] = nn.Linear(n_last, cfg.num_classes)
    return SpikingNet(cfg, layers, syn, neu)


# -- training -----------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model, pixels, labels, batch_size=512):
    """Accuracy (float in [0, 1]) of ``model`` on raw integer inputs and labels."""
    pred = model.predict(pixels, batch_size=batch_size)
    return float((pred == torch.as_tensor(labels)).float().mean())


def train(*, arch="mlp", timesteps=1, levels=4, epochs=10, seed=0, progress=None,
          dataset="digits", hidden=64, channels=8, blocks=1, threshold=1.0, alpha=5.0,
          lr=1e-2, batch_size=32, split_seed=0, block_strides=(), pool=None, leak=0):
    """Train a float multi-level SNN with surrogate gradients and Adam.

    Parameters
    ----------
    arch : str
        ``"mlp"`` (input → dense ``hidden`` → readout); ``"cnn"`` (conv 3×3 s1 p1 ``channels``
        → conv 3×3 s2 p1 ``2·channels`` → dense ``hidden`` → readout; with ``pool`` max or
        avg: conv 3×3 s1 p1 ``channels`` → pool 2×2 → conv 3×3 s1 p1 ``2·channels`` → pool
        2×2 → dense ``hidden`` → readout); ``"vgg"`` (2 stages of [conv 3×3 s1 p1 → conv 3×3
        s1 p1 → pool 2×2], ``channels`` then ``2·channels`` → dense readout; layers
        ``conv1_1 conv1_2 pool1 conv2_1 conv2_2 pool2 readout``); ``"sew-resnet"`` or
        ``"sparse-resnet"`` (stem conv 3×3 → ``blocks`` × [conv 3×3 → conv 3×3, identity
        shortcut, SEW add or barrier neuron] → readout). No batch normalisation. A residual
        block with stride 2 (``block_strides``) downsamples: stride-2 first conv with twice the
        channels and a 1×1 stride-2 spiking conv shortcut. With pooling the input's height and
        width must be multiples of 4 (8×8 digits, 28×28 MNIST, 32×32 CIFAR).
    timesteps, levels : int
        T and N.
    epochs : int
    seed : int
        Seed of the initialisation and of the shuffling.
    progress : callable or None
        Called after each epoch with a dict ``{epoch, epochs, loss, train_accuracy,
        test_accuracy, seconds}``.
    dataset : str, path or Dataset
        ``"digits"`` (default) or a user dataset (:func:`load_dataset`).
    hidden, channels, blocks, threshold, alpha, block_strides :
        See :class:`ModelConfig`.
    pool : str or None
        ``"none"``, ``"max"`` or ``"avg"`` (cnn and vgg); None: the arch's default (cnn none,
        vgg max; see :class:`ModelConfig`).
    leak : int
        The integer leak k of every dense and conv2d spiking layer (:class:`ModelConfig`,
        docs/leak.md); 0 (the default) is no leak.
    lr : float
        Adam learning rate, decayed to 0 by cosine annealing over the training.
    batch_size : int
    split_seed : int
        Seed of the stratified split (ignored for a :class:`Dataset`, which is already split).

    Returns
    -------
    model : SpikingNet
        In eval mode.
    metrics : dict
        ``test_accuracy``, ``train_accuracy`` (floats in [0, 1]), ``loss`` (last epoch),
        ``history`` (the per-epoch dicts), ``seconds``, ``n_train``, ``n_test``.

    Raises
    ------
    MlsnnError
        On a bad argument or dataset.
    """
    if arch not in ARCHS:
        raise MlsnnError(f"arch must be one of {', '.join(ARCHS)}, not {arch!r}")
    _pos_int("timesteps", timesteps, 1024)
    _pos_int("levels", levels, MAX_LEVELS)
    epochs = _pos_int("epochs", epochs)
    batch_size = _pos_int("batch_size", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise MlsnnError(f"seed must be an integer, not {seed!r}")
    data = load_dataset(dataset, split_seed)
    config = ModelConfig(arch=arch, input_shape=data.input_shape, num_classes=data.num_classes,
                         timesteps=timesteps, levels=levels, threshold=threshold, alpha=alpha,
                         hidden=hidden, channels=channels, blocks=blocks,
                         block_strides=block_strides, pool="" if pool is None else pool,
                         input_scale=data.input_scale,
                         in_bits=data.in_bits, dataset=data.name,
                         split_seed=data.split_seed, dataset_path=_dataset_path(dataset),
                         leak=leak)
    lr = _pos_float("lr", lr)
    torch.manual_seed(seed)
    model = build_model(config)
    x = model.encode(data.x_train)
    y = torch.as_tensor(data.y_train)
    loss_fn = nn.CrossEntropyLoss()
    metrics = _fit(model, x, y, lambda xb, yb: loss_fn(model(xb), yb),
                   lambda split: evaluate(model, getattr(data, f"x_{split}"),
                                          getattr(data, f"y_{split}")),
                   data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                   progress=progress)
    return model, metrics


def _fit(model, x, y, loss_of, accuracy, data, *, epochs, lr, batch_size, seed, progress):
    """Adam with cosine annealing over ``epochs`` of shuffled mini-batches of ``x``, ``y``.

    ``loss_of(x_batch, y_batch)`` is the loss to minimise, ``accuracy("train" | "test")`` the
    model's accuracy on a split of ``data`` after each epoch. Leaves ``model`` in eval mode and
    returns the metrics of :func:`train`.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    history = []
    start = time.monotonic()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total, seen = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = loss_of(x[idx], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        model.eval()
        entry = {"epoch": epoch, "epochs": epochs, "loss": total / seen,
                 "train_accuracy": accuracy("train"), "test_accuracy": accuracy("test"),
                 "seconds": time.monotonic() - start}
        history.append(entry)
        if progress is not None:
            progress(dict(entry))
    model.eval()
    last = history[-1]
    return {"test_accuracy": last["test_accuracy"], "train_accuracy": last["train_accuracy"],
            "loss": last["loss"], "history": history, "seconds": time.monotonic() - start,
            "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test))}


# -- checkpoints --------------------------------------------------------------------------------

def save_checkpoint(model, path, *, metrics=None):
    """Save ``{"config": ..., "state_dict": ...}`` with :func:`torch.save`.

    ``config`` is :meth:`ModelConfig.to_dict` plus ``thresholds`` (V_th per spiking layer,
    barrier and average pool) — arch, T, N, pool, thresholds, input scale, split seed.
    ``metrics`` (plain numbers) are stored alongside when given.
    """
    config = model.config.to_dict()
    config["thresholds"] = model.thresholds()
    doc = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": config,
           "state_dict": model.state_dict()}
    if metrics is not None:
        doc["metrics"] = {k: v for k, v in metrics.items()
                          if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    torch.save(doc, os.fspath(path))


def load_checkpoint(path):
    """The :class:`SpikingNet` saved by :func:`save_checkpoint`, in eval mode.

    Raises
    ------
    MlsnnError
        If the file is not an mlsnn float-model checkpoint. FileNotFoundError if it is missing.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:          # torch raises many types for a file that is not its own
        raise MlsnnError(f"{path} is not a readable PyTorch checkpoint "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                         ) from None
    if (not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT
            or "config" not in doc or "state_dict" not in doc):
        raise MlsnnError(f"{path} is not an mlsnn float-model checkpoint (expected a dict with "
                         f"format {CHECKPOINT_FORMAT!r}, config and state_dict)")
    if doc.get("version") != CHECKPOINT_VERSION:
        raise MlsnnError(f"{path} has checkpoint version {doc.get('version')!r}; this mlsnn "
                         f"reads version {CHECKPOINT_VERSION}")
    config = ModelConfig.from_dict(doc["config"])
    model = build_model(config)
    for name, vth in doc["config"].get("thresholds", {}).items():
        if name not in model.neurons:
            raise MlsnnError(f"{path}: config thresholds name layer {name!r}, which the "
                             f"{config.arch} model does not have")
        model.neurons[name].threshold = _pos_float(f"threshold of layer {name!r}", vth)
    try:
        model.load_state_dict(doc["state_dict"])
    except RuntimeError as e:
        raise MlsnnError(f"{path}: weights do not match the config: "
                         f"{str(e).splitlines()[0]}") from None
    model.eval()
    return model


# -- QCFS ANNs (seed 003) -----------------------------------------------------------------------

#: Archs of :func:`train_qcfs`.
QCFS_ARCHS = ("mlp", "cnn")
#: The shift of seed 003's Eq. 2 (after Bu et al.'s QCFS): round to nearest.
QCFS_SHIFT = 0.5


def qcfs(x, lam, levels, shift=QCFS_SHIFT):
    """Quantization-clip-floor-shift: ``λ/Q · clip(⌊x·Q/λ + shift⌋, 0, Q)`` (seed 003 Eq. 2).

    The floor passes its gradient straight through, so ``x`` gets ``1`` where the output is not
    clipped and ``λ`` gets ``∂/∂λ`` of ``λ/Q · clip(x·Q/λ + shift + c, 0, Q)`` with the floor's
    offset c held constant (1 where clipped at λ).
    """
    v = x * (levels / lam) + shift
    k = torch.clamp(v + (torch.floor(v) - v).detach(), 0, levels)
    return k * (lam / levels)


class QCFS(nn.Module):
    """The QCFS activation with a trainable output threshold λ (seed 003 Eq. 2).

    Parameters
    ----------
    levels : int
        Q, the quantization steps (outputs 0, λ/Q, ..., λ).
    shift : float
        Added before the floor (0.5: round to nearest, as in the seed).
    lam : float
        The initial λ.

    Members
    -------
    lam : torch.nn.Parameter
        λ, a scalar; the converted SNN's largest output per timestep (N·θ).
    """

    def __init__(self, levels, shift=QCFS_SHIFT, lam=1.0):
        super().__init__()
        self.levels = _pos_int("QCFS levels", levels, MAX_LEVELS)
        if isinstance(shift, bool) or not isinstance(shift, (int, float)) or \
                not 0 <= shift < 1:
            raise MlsnnError(f"QCFS shift must be a number in [0, 1), not {shift!r}")
        self.shift = float(shift)
        self.lam = nn.Parameter(torch.tensor(_pos_float("QCFS lambda", lam)))

    def forward(self, x):
        return qcfs(x, self.lam, self.levels, self.shift)

    def counts(self, x):
        """The integer levels ``k = clip(⌊x·Q/λ + shift⌋, 0, Q)`` of ``x`` (the spike values
        Σ_t z(t) of the converted neuron at T·N = Q), with the straight-through gradient."""
        return self(x) * (self.levels / self.lam)

    def extra_repr(self):
        return f"levels={self.levels}, shift={self.shift}"


def qcfs_layers(arch, input_shape, num_classes, *, levels, hidden=64, channels=8, lam=1.0):
    """The architecture of a QCFS ANN as the layer list of ``mlsnn convert --arch``.

    ``"mlp"``: Flatten → Linear ``hidden`` → QCFS → Linear; ``"cnn"``: Conv2d 3×3 s1 p1
    ``channels`` → QCFS → Conv2d 3×3 s2 p1 ``2·channels`` → QCFS → Flatten → Linear ``hidden``
    → QCFS → Linear (the layers of :func:`train`'s mlp and cnn without pooling).
    """
    if arch not in QCFS_ARCHS:
        raise MlsnnError(f"--qcfs trains arch {' or '.join(QCFS_ARCHS)}, not {arch!r}")
    hidden = _pos_int("hidden", hidden)
    act = {"type": "QCFS", "levels": _pos_int("--qcfs", levels, MAX_LEVELS),
           "shift": QCFS_SHIFT}
    if arch == "mlp":
        n_in = int(np.prod(input_shape))
        return [{"type": "Flatten"}, {"type": "Linear", "in_features": n_in,
                                      "out_features": hidden}, act,
                {"type": "Linear", "in_features": hidden, "out_features": num_classes}]
    if len(input_shape) != 3:
        raise MlsnnError(f"arch cnn needs [channels, height, width] inputs, not "
                         f"{list(input_shape)}")
    c, h, w = input_shape
    ch = _pos_int("channels", channels)
    flat = 2 * ch * ((h + 1) // 2) * ((w + 1) // 2)
    return [{"type": "Conv2d", "in_channels": c, "out_channels": ch, "kernel_size": 3,
             "stride": 1, "padding": 1}, act,
            {"type": "Conv2d", "in_channels": ch, "out_channels": 2 * ch, "kernel_size": 3,
             "stride": 2, "padding": 1}, act, {"type": "Flatten"},
            {"type": "Linear", "in_features": flat, "out_features": hidden}, act,
            {"type": "Linear", "in_features": hidden, "out_features": num_classes}]


def build_qcfs(layers, lam=1.0):
    """A freshly initialised ``nn.Sequential`` of :func:`qcfs_layers` (QCFS λ = ``lam``)."""
    modules = []
    for d in layers:
        kw = {k: v for k, v in d.items() if k != "type"}
        modules.append(QCFS(lam=lam, **kw) if d["type"] == "QCFS"
                       else getattr(nn, d["type"])(**kw))
    return nn.Sequential(*modules)


def qcfs_forward(model, x):
    """Logits of a QCFS ``Sequential`` on float inputs, and the spike values per image: the
    batch mean of ``Σ_l Σ_i k_i`` over the QCFS layers (:meth:`QCFS.counts`), the converted
    SNN's Σ z at T·N = Q — the ℓ1 term of seed 003 Eq. 9 for mlsnn's multi-level code."""
    spikes = x.new_zeros(())
    for m in model:
        if isinstance(m, QCFS):
            k = m.counts(x)
            spikes = spikes + k.flatten(1).sum(1).mean()
            x = k * (m.lam / m.levels)
        else:
            x = m(x)
    return x, spikes


def train_qcfs(*, levels, spike_l1=0.0, arch="mlp", epochs=10, seed=0, progress=None,
               dataset="digits", hidden=64, channels=8, lam=1.0, lr=1e-2, batch_size=32,
               split_seed=0):
    """Train a ReLU → QCFS ANN (seed 003 §2.1 and Eq. 9) for lossless conversion at T·N = Q.

    The loss is ``cross_entropy + spike_l1 · L_SP``, L_SP the spike values per image of
    :func:`qcfs_forward`; every QCFS λ is trained with the weights (Adam, cosine-annealed).

    Parameters
    ----------
    levels : int
        Q of every QCFS activation.
    spike_l1 : float
        The coefficient of the spike ℓ1 penalty (0: none).
    arch, hidden, channels :
        See :func:`qcfs_layers`.
    lam : float
        The initial λ of every QCFS.
    epochs, seed, progress, dataset, lr, batch_size, split_seed :
        As for :func:`train`.

    Returns
    -------
    model : torch.nn.Sequential
        In eval mode; its input is ``pixel · input_scale`` shaped ``[B, *input_shape]``.
    layers : list of dict
        Its architecture (:func:`qcfs_layers`).
    metrics : dict
        As for :func:`train`, plus ``spikes_per_image`` (L_SP on the test split),
        ``lambdas`` (the trained λ per QCFS), ``input_scale``, ``dataset``, ``levels``.
    """
    epochs = _pos_int("epochs", epochs)
    batch_size = _pos_int("batch_size", batch_size)
    lr = _pos_float("lr", lr)
    if isinstance(spike_l1, bool) or not isinstance(spike_l1, (int, float)) or \
            not math.isfinite(spike_l1) or spike_l1 < 0:
        raise MlsnnError(f"--spike-l1 must be a number >= 0, not {spike_l1!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise MlsnnError(f"seed must be an integer, not {seed!r}")
    data = load_dataset(dataset, split_seed)
    layers = qcfs_layers(arch, data.input_shape, data.num_classes, levels=levels,
                         hidden=hidden, channels=channels)
    torch.manual_seed(seed)
    model = build_qcfs(layers, lam)
    scale = data.input_scale

    def floats(pixels):
        return torch.as_tensor(np.asarray(pixels), dtype=torch.float32) * scale

    loss_fn = nn.CrossEntropyLoss()

    def loss_of(xb, yb):
        logits, spikes = qcfs_forward(model, xb)
        return loss_fn(logits, yb) + spike_l1 * spikes

    @torch.no_grad()
    def accuracy(split):
        pred = model(floats(getattr(data, f"x_{split}"))).argmax(1)
        return float((pred == torch.as_tensor(getattr(data, f"y_{split}"))).float().mean())

    metrics = _fit(model, floats(data.x_train), torch.as_tensor(data.y_train), loss_of,
                   accuracy, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                   progress=progress)
    with torch.no_grad():
        metrics["spikes_per_image"] = float(qcfs_forward(model, floats(data.x_test))[1])
    metrics.update(lambdas=[float(m.lam.detach()) for m in model if isinstance(m, QCFS)],
                   input_scale=scale, dataset=data.name, levels=int(levels))
    return model, layers, metrics


def qcfs_arch_path(path):
    """Where :func:`save_qcfs` writes the architecture of ``path``: ``ann.pt`` →
    ``ann.arch.json``."""
    return os.path.splitext(os.fspath(path))[0] + ".arch.json"


def save_qcfs(model, layers, path):
    """Save a QCFS ANN as ``mlsnn convert`` reads it: the state dict at ``path`` and the layer
    list (JSON) at :func:`qcfs_arch_path`. Returns the architecture's path."""
    import json

    arch = qcfs_arch_path(path)
    torch.save(model.state_dict(), os.fspath(path))
    with open(arch, "w", encoding="utf-8") as f:
        json.dump(layers, f, indent=1)
        f.write("\n")
    return arch
