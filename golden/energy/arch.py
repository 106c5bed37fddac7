"""Architecture descriptions for the energy model: layer shapes, nothing else.

An :class:`Arch` is an input shape and a tuple of :class:`LayerSpec` in topological order. It is
what the Lemaire model needs besides the activity: the shape of every convolution, dense layer,
residual join and pooling layer, and the widths of the stored elements when known.

Three ways to get one: :func:`vgg16` and :func:`resnet18` (seed 000's networks, any input
shape, built here without torchvision), :func:`from_ir` (an IR network), and
:func:`from_json` (a list of layers in a file, for ``mlsnn energy --arch file.json``).
The torch front end (:mod:`golden.energy.torchfront`) records one from a forward pass.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Optional

from .. import ir as _ir
from ..errors import MlsnnError
from ..ir import INPUT, Network, conv_out_size

__all__ = ["LayerSpec", "Arch", "vgg16", "resnet18", "from_ir", "from_json", "named"]

KINDS = ("conv", "dense", "pool", "join")
JOINS = ("sew", "barrier")
#: Largest integer leak k (β = 1 − 2^−k), the IR's bound (``golden.ir.MAX_LEAK``).
MAX_LEAK = getattr(_ir, "MAX_LEAK", 30)


@dataclass(frozen=True)
class LayerSpec:
    """One layer of an architecture.

    Parameters
    ----------
    name : str
    kind : ``"conv"``, ``"dense"``, ``"pool"`` or ``"join"`` (residual add: ``join="sew"`` has
        no cost of its own, ``"barrier"`` is a barrier neuron; in the ANN both are an
        element-wise add). A pool (``pool="max"``: the window's maximum, no neuron; ``"avg"``:
        the window's sum into an IF neuron, the 1/k² folded into θ) maps every input index to
        one output (fan-out 1), has no weights and no bias, and keeps its channels.
    inputs : tuple of str
        Names of the layers feeding it (``"input"`` is the network input); may be empty when
        unknown (torch models).
    in_shape, out_shape : tuple of int
        ``(C, H, W)`` or ``(N,)``, per input stream (all streams of a join have one shape).
    kernel, stride, padding : int
        Convolutions and pooling (a pool has no padding; its window need not tile the input:
        ``H_out = (H_in − K) // S + 1``).
    pool : ``"max"`` or ``"avg"``
        The operation of a pool.
    levels : int
        N of the neurons of this layer (0 for the readout and for SEW joins, which never fire).
    readout : bool
        The last layer: integrates, never fires.
    w_bits, b_bits, p_bits, a_bits : int or None
        Widths of a weight, a bias, a potential and an (ANN) activation; ``None`` takes the
        technology table's default.
    n_weights, n_bias : int or None
        Override the stored counts (default: from the shapes).
    lanes : int
        Elements per access of the weight, bias and potential memories (docs/lanes.md).
    reset : ``"soft"`` or ``"hard"``
        The neuron's reset (conv, dense; docs/reset.md): a soft reset costs one ACC per emitted
        event (P − z·θ), a hard reset none (it writes v0 instead of the difference).
    leak : int
        The integer leak k of a conv or dense layer (docs/leak.md): 0 is the IF neuron, k in
        1..:data:`MAX_LEAK` the LIF neuron with β = 1 − 2^−k, one shift-subtract per neuron
        in the fire sweep of every timestep but the last (priced as one ACC; no memory
        access: the sweep reads and writes every potential anyway). A readout never leaks.
    """

    name: str
    kind: str
    inputs: tuple = ()
    in_shape: tuple = ()
    out_shape: tuple = ()
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    join: Optional[str] = None
    pool: str = "max"
    levels: int = 1
    readout: bool = False
    w_bits: Optional[int] = None
    b_bits: Optional[int] = None
    p_bits: Optional[int] = None
    a_bits: Optional[int] = None
    lanes: int = 1
    reset: str = "soft"
    leak: int = 0

    def __post_init__(self):
        owner = f"layer '{self.name}'"
        self._check_leak(owner)
        if self.reset not in ("soft", "hard"):
            raise MlsnnError(f"{owner}: field 'reset' must be 'soft' or 'hard', not "
                             f"{self.reset!r}")
        if isinstance(self.lanes, bool) or not isinstance(self.lanes, int) or self.lanes < 1:
            raise MlsnnError(f"{owner}: field 'lanes' must be a positive integer")
        if self.kind not in KINDS:
            raise MlsnnError(f"{owner}: field 'kind' must be one of {', '.join(KINDS)}, "
                             f"not {self.kind!r}")
        for fname in ("in_shape", "out_shape"):
            v = getattr(self, fname)
            if (not isinstance(v, (tuple, list)) or len(v) not in (1, 3)
                    or not all(isinstance(s, int) and s >= 1 for s in v)):
                raise MlsnnError(f"{owner}: field '{fname}' must be (N,) or (C, H, W) of "
                                 f"positive integers, not {v!r}")
            object.__setattr__(self, fname, tuple(v))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        for fname in ("kernel", "stride"):
            v = getattr(self, fname)
            if not isinstance(v, int) or v < 1:
                raise MlsnnError(f"{owner}: field '{fname}' must be a positive integer")
        if not isinstance(self.padding, int) or self.padding < 0:
            raise MlsnnError(f"{owner}: field 'padding' must be a non-negative integer")
        if not isinstance(self.levels, int) or self.levels < 0:
            raise MlsnnError(f"{owner}: field 'levels' must be a non-negative integer")
        if self.pool not in ("max", "avg"):
            raise MlsnnError(f"{owner}: field 'pool' must be 'max' or 'avg', not {self.pool!r}")
        if self.kind == "join":
            if self.join not in JOINS:
                raise MlsnnError(f"{owner}: field 'join' must be 'sew' or 'barrier', "
                                 f"not {self.join!r}")
            if self.in_shape != self.out_shape:
                raise MlsnnError(f"{owner}: a join keeps its shape")
        if self.kind == "pool":
            self._check_pool(owner)
        if self.kind == "conv":
            if len(self.in_shape) != 3 or len(self.out_shape) != 3:
                raise MlsnnError(f"{owner}: a conv needs (C, H, W) shapes")
            exp = (conv_out_size(self.in_shape[1], self.kernel, self.stride, self.padding),
                   conv_out_size(self.in_shape[2], self.kernel, self.stride, self.padding))
            if exp != self.out_shape[1:]:
                raise MlsnnError(f"{owner}: out_shape {self.out_shape} does not follow from "
                                 f"in_shape {self.in_shape}, kernel {self.kernel}, stride "
                                 f"{self.stride}, padding {self.padding} (expected H, W = "
                                 f"{exp})")
        for fname in ("w_bits", "b_bits", "p_bits", "a_bits"):
            v = getattr(self, fname)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise MlsnnError(f"{owner}: field '{fname}' must be a positive integer")

    def _check_leak(self, owner):
        k = self.leak
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_LEAK:
            raise MlsnnError(f"{owner}: field 'leak' must be an integer k in 0..{MAX_LEAK} "
                             f"(beta = 1 - 2^-k; 0 is no leak), not {k!r}")
        if k and self.kind not in ("conv", "dense"):
            raise MlsnnError(f"{owner}: field 'leak' applies to conv and dense layers only, "
                             f"not to a {self.kind} (leak {k})")
        if k and self.readout:
            raise MlsnnError(f"{owner}: a leaky readout is not supported (leak {k}): the "
                             f"readout integrates and never fires; give it leak 0")

    def _check_pool(self, owner):
        if len(self.in_shape) != 3 or len(self.out_shape) != 3:
            raise MlsnnError(f"{owner}: a pool needs (C, H, W) shapes, not {self.in_shape} -> "
                             f"{self.out_shape}")
        if self.padding:
            raise MlsnnError(f"{owner}: field 'padding' must be 0 for a pool, not "
                             f"{self.padding}")
        c, h, w = self.in_shape
        exp = (c, (h - self.kernel) // self.stride + 1, (w - self.kernel) // self.stride + 1)
        if self.kernel > min(h, w) or exp != self.out_shape:
            raise MlsnnError(f"{owner}: out_shape {self.out_shape} does not follow from "
                             f"in_shape {self.in_shape}, kernel {self.kernel}, stride "
                             f"{self.stride} of a pool (expected {exp}, kernel <= {min(h, w)})")

    # -- derived sizes ---------------------------------------------------------------------
    @property
    def n_in(self):
        return math.prod(self.in_shape)

    @property
    def n_out(self):
        return math.prod(self.out_shape)

    @property
    def c_in(self):
        return self.in_shape[0]

    @property
    def c_out(self):
        return self.out_shape[0]

    @property
    def n_weights(self):
        if self.kind == "conv":
            return self.c_in * self.kernel ** 2 * self.c_out
        if self.kind == "dense":
            return self.n_in * self.n_out
        return 0

    @property
    def n_bias(self):
        if self.kind == "conv":
            return self.c_out
        if self.kind == "dense":
            return self.n_out
        return 0

    @property
    def synapses(self):
        """Connections (= ANN MACs): every output neuron times its full fan-in."""
        if self.kind == "conv":
            return self.n_out * self.c_in * self.kernel ** 2
        if self.kind == "dense":
            return self.n_in * self.n_out
        return 0

    @property
    def has_neurons(self):
        """Does this layer fire at a rate of its own (conv, dense, barrier join)? A pool holds
        a potential (avg) or maximum (max) per output too, but its events follow from its
        input's (:func:`golden.energy.lemaire.activity_from_rates`)."""
        return self.kind in ("conv", "dense") or (self.kind == "join" and self.join == "barrier")

    def to_json(self):
        d = {"name": self.name, "kind": self.kind, "inputs": list(self.inputs),
             "in_shape": list(self.in_shape), "out_shape": list(self.out_shape)}
        if self.kind in ("conv", "pool"):
            d.update(kernel=self.kernel, stride=self.stride, padding=self.padding)
        if self.kind == "pool":
            d["pool"] = self.pool
        if self.kind == "join":
            d["join"] = self.join
        d["levels"] = self.levels
        if self.readout:
            d["readout"] = True
        for k in ("w_bits", "b_bits", "p_bits", "a_bits"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.leak:
            d["leak"] = self.leak
        return d


@dataclass(frozen=True)
class Arch:
    """Input shape plus layers in topological order."""

    input_shape: tuple
    layers: tuple
    name: str = "arch"
    in_bits: Optional[int] = None

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        names = set()
        for layer in self.layers:
            if not isinstance(layer, LayerSpec):
                raise MlsnnError("arch: every layer must be a LayerSpec")
            if layer.name in names or layer.name == INPUT:
                raise MlsnnError(f"arch: layer name '{layer.name}' is used twice or reserved")
            for src in layer.inputs:
                if src != INPUT and src not in names:
                    raise MlsnnError(f"layer '{layer.name}': field 'inputs' names '{src}', "
                                     f"which is not an earlier layer or 'input'")
            names.add(layer.name)

    def layer(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise MlsnnError(f"arch has no layer '{name}'")

    @property
    def neurons(self):
        """Neurons that fire (conv, dense, barrier joins; not the readout)."""
        return sum(l.n_out for l in self.layers if l.has_neurons and not l.readout)

    @property
    def synapses(self):
        return sum(l.synapses for l in self.layers)

    def to_json(self):
        return {"name": self.name, "input_shape": list(self.input_shape),
                "layers": [l.to_json() for l in self.layers]}


class _Builder:
    """Chains layers, tracking the current shape."""

    def __init__(self, input_shape, levels, ann):
        self.shape = tuple(input_shape)
        self.prev = INPUT
        self.layers = []
        self.levels = levels
        self.ann = ann

    def conv(self, name, c_out, k=3, s=1, p=1, src=None, shape=None):
        src = src or self.prev
        shape = shape or self.shape
        out = (c_out, conv_out_size(shape[1], k, s, p), conv_out_size(shape[2], k, s, p))
        if min(out[1:]) < 1:
            raise MlsnnError(f"layer '{name}': the input {shape} is too small for this "
                             f"architecture")
        self.layers.append(LayerSpec(name=name, kind="conv", inputs=(src,), in_shape=shape,
                                     out_shape=out, kernel=k, stride=s, padding=p,
                                     levels=self.levels))
        self.prev, self.shape = name, out
        return name, out

    def pool(self, name, k, s=None, op="max"):
        s = s or k
        c, h, w = self.shape
        k = min(k, h, w)                # a window larger than the map pools all of it
        out = (c, (h - k) // s + 1, (w - k) // s + 1)
        self.layers.append(LayerSpec(name=name, kind="pool", inputs=(self.prev,),
                                     in_shape=self.shape, out_shape=out, kernel=k,
                                     stride=s, pool=op, levels=self.levels))
        self.prev, self.shape = name, out

    def dense(self, name, n, readout=False):
        n_in = math.prod(self.shape)
        self.layers.append(LayerSpec(name=name, kind="dense", inputs=(self.prev,),
                                     in_shape=(n_in,), out_shape=(n,), readout=readout,
                                     levels=0 if readout else self.levels))
        self.prev, self.shape = name, (n,)

    def join(self, name, a, b, mode, shape):
        self.layers.append(LayerSpec(name=name, kind="join", inputs=(a, b), in_shape=shape,
                                     out_shape=shape, join=mode,
                                     levels=self.levels if mode == "barrier" else 0))
        self.prev, self.shape = name, shape


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M")


def vgg16(input_shape=(3, 32, 32), *, classes=10, fc=(512, 512), levels=1):
    """VGG16 as trained on CIFAR-10 by seed 000 (13 conv 3×3, 5 max-pools, FC 512-512-classes).

    The classifier follows the CIFAR variant of the public reference configuration
    (``fc_units = [512, 512]``); any input shape whose sides survive five halvings works.
    The max-pools are priced as pool layers (``docs/energy.md``, Pooling).
    """
    if len(input_shape) != 3:
        raise MlsnnError(f"vgg16 needs a (C, H, W) input shape, not {tuple(input_shape)}")
    b = _Builder(input_shape, levels, False)
    i = p = 0
    for v in VGG16_CFG:
        if v == "M":
            p += 1
            if b.shape[1] < 2 or b.shape[2] < 2:
                raise MlsnnError(f"vgg16: input {tuple(input_shape)} is too small for five "
                                 f"2x2 max-pools")
            b.pool(f"pool{p}", 2)
        else:
            i += 1
            b.conv(f"conv{i}", v)
    for j, n in enumerate(fc):
        b.dense(f"fc{j + 1}", n)
    b.dense(f"fc{len(fc) + 1}", classes, readout=True)
    return Arch(input_shape=tuple(input_shape), layers=tuple(b.layers), name="vgg16")


def resnet18(input_shape=(3, 32, 32), *, classes=10, join="sew", levels=1):
    """ResNet18, CIFAR variant (3×3 stem, no stem pooling), as the SEW/Sparse-ResNet18 of
    seed 000: four stages of two basic blocks (64, 128, 256, 512 channels), the first block of
    stages 2–4 with stride 2 and a 1×1 stride-2 convolution on the shortcut; global average
    pooling (a pool layer) and one dense readout.

    Parameters
    ----------
    join : ``"sew"`` (SEW-ResNet: spikes of both paths go to the next layer) or ``"barrier"``
        (Sparse-ResNet: a barrier neuron after each add).
    """
    if join not in JOINS:
        raise MlsnnError(f"resnet18: join must be 'sew' or 'barrier', not {join!r}")
    if len(input_shape) != 3:
        raise MlsnnError(f"resnet18 needs a (C, H, W) input shape, not {tuple(input_shape)}")
    b = _Builder(input_shape, levels, False)
    b.conv("conv1", 64)
    n = 0
    for stage, ch in enumerate((64, 128, 256, 512), start=1):
        for blk in range(2):
            n += 1
            s = 2 if (stage > 1 and blk == 0) else 1
            src, src_shape = b.prev, b.shape
            tag = f"l{stage}b{blk + 1}"
            b.conv(f"{tag}_conv1", ch, k=3, s=s, p=1)
            a_name, a_shape = b.conv(f"{tag}_conv2", ch, k=3, s=1, p=1)
            if s != 1 or src_shape[0] != ch:
                short, _ = b.conv(f"{tag}_short", ch, k=1, s=s, p=0, src=src, shape=src_shape)
            else:
                short = src
            b.join(f"{tag}_add", a_name, short, join, a_shape)
    b.pool("avgpool", b.shape[1], b.shape[1], op="avg")
    b.dense("fc", classes, readout=True)
    return Arch(input_shape=tuple(input_shape), layers=tuple(b.layers),
                name=f"resnet18-{join}")


def named(name, input_shape, *, classes=10, levels=1, join="sew"):
    """``vgg16``, ``resnet18`` (SEW), ``sew-resnet18``, ``sparse-resnet18`` or a JSON path."""
    key = name.lower()
    if key == "vgg16":
        return vgg16(input_shape, classes=classes, levels=levels)
    if key in ("resnet18", "sew-resnet18", "sparse-resnet18"):
        mode = {"sew-resnet18": "sew", "sparse-resnet18": "barrier"}.get(key, join)
        return resnet18(input_shape, classes=classes, join=mode, levels=levels)
    if os.path.isfile(name):
        with open(name) as f:
            try:
                doc = json.load(f)
            except json.JSONDecodeError as e:
                raise MlsnnError(f"{name}: malformed JSON ({e})") from None
        return from_json(doc, levels=levels, where=name)
    raise MlsnnError(f"unknown architecture {name!r}: use vgg16, resnet18, sew-resnet18, "
                     f"sparse-resnet18 or a JSON file of layers")


def from_json(doc, *, levels=1, where="arch"):
    """An :class:`Arch` from ``{"input_shape": [...], "layers": [{...}, ...]}``.

    Each layer gives ``name``, ``kind`` and the fields it needs: conv ``out_channels``,
    ``kernel``, ``stride``, ``padding``; dense ``out_features``; conv and dense optionally
    ``reset`` (``"soft"``, the default, or ``"hard"``) and ``leak`` (an integer k, β = 1 − 2^−k;
    0, the default, is IF); pool ``kernel`` (``stride``);
    join ``inputs`` (two names) and ``join``. ``inputs`` defaults to the previous layer; shapes
    are derived. The last layer is the readout.
    """
    if not isinstance(doc, dict) or "input_shape" not in doc or "layers" not in doc:
        raise MlsnnError(f"{where}: an architecture file is an object with 'input_shape' and "
                         f"'layers'")
    shape = doc["input_shape"]
    if not isinstance(shape, list) or len(shape) not in (1, 3):
        raise MlsnnError(f"{where}: field 'input_shape' must be [N] or [C, H, W]")
    shapes = {INPUT: tuple(shape)}
    prev = INPUT
    layers = []
    raw = doc["layers"]
    if not isinstance(raw, list) or not raw:
        raise MlsnnError(f"{where}: field 'layers' must be a non-empty list")
    for idx, d in enumerate(raw):
        if not isinstance(d, dict):
            raise MlsnnError(f"{where}: layers[{idx}] must be an object")
        name = d.get("name", f"layer{idx}")
        kind = d.get("kind")
        inputs = tuple(d.get("inputs", (prev,)))
        for s in inputs:
            if s not in shapes:
                raise MlsnnError(f"{where}: layer '{name}' reads '{s}', which is not an earlier "
                                 f"layer or 'input'")
        ins = shapes[inputs[0]]
        readout = idx == len(raw) - 1
        lv = 0 if readout else int(d.get("levels", levels))
        try:
            if kind == "conv":
                k, s, p = int(d.get("kernel", 3)), int(d.get("stride", 1)), int(d.get("padding", 0))
                if len(ins) != 3:
                    raise MlsnnError(f"{where}: layer '{name}': a conv needs a (C, H, W) input")
                out = (int(d["out_channels"]), conv_out_size(ins[1], k, s, p),
                       conv_out_size(ins[2], k, s, p))
                spec = LayerSpec(name=name, kind="conv", inputs=inputs, in_shape=ins,
                                 out_shape=out, kernel=k, stride=s, padding=p, levels=lv,
                                 readout=readout, reset=d.get("reset", "soft"),
                                 leak=d.get("leak", 0))
            elif kind == "dense":
                spec = LayerSpec(name=name, kind="dense", inputs=inputs,
                                 in_shape=(math.prod(ins),), out_shape=(int(d["out_features"]),),
                                 levels=lv, readout=readout, reset=d.get("reset", "soft"),
                                 leak=d.get("leak", 0))
            elif kind == "pool":
                k = int(d.get("kernel", 2))
                s = int(d.get("stride", k))
                if len(ins) != 3:
                    raise MlsnnError(f"{where}: layer '{name}': a pool needs a (C, H, W) input")
                out = (ins[0], (ins[1] - k) // s + 1, (ins[2] - k) // s + 1)
                spec = LayerSpec(name=name, kind="pool", inputs=inputs, in_shape=ins,
                                 out_shape=out, kernel=k, stride=s, levels=lv,
                                 pool=d.get("pool", "max"), leak=d.get("leak", 0))
            elif kind == "join":
                if len(inputs) != 2 or shapes[inputs[1]] != ins:
                    raise MlsnnError(f"{where}: layer '{name}': a join needs two inputs of one "
                                     f"shape")
                mode = d.get("join", "sew")
                spec = LayerSpec(name=name, kind="join", inputs=inputs, in_shape=ins,
                                 out_shape=ins, join=mode,
                                 levels=lv if mode == "barrier" else 0, leak=d.get("leak", 0))
            else:
                raise MlsnnError(f"{where}: layer '{name}': field 'kind' must be conv, dense, "
                                 f"pool or join, not {kind!r}")
        except KeyError as e:
            raise MlsnnError(f"{where}: layer '{name}' is missing field {e}") from None
        except (TypeError, ValueError) as e:
            raise MlsnnError(f"{where}: layer '{name}': {e}") from None
        layers.append(spec)
        shapes[name] = spec.out_shape
        prev = name
    return Arch(input_shape=tuple(shape), layers=tuple(layers), name=doc.get("name", "arch"))


def _event_bits(n, zmax):
    """Bits of one event word: index, value and the 2-bit kind (EVENT/EOT/READOUT)."""
    return max(1, (max(n, 2) - 1).bit_length()) + max(1, int(zmax).bit_length()) + 2


def from_ir(net: Network):
    """The :class:`Arch` of an IR network, with the widths the hardware stores.

    Widths: weights ``w_bits``, biases ``b_bits``, potentials the layer's potential width, ANN
    activations ``⌈log2(N·T + 1)⌉`` bits (the quantized ANN with as many levels as the SNN's
    N·T + 1, the fair baseline), the network input ``in_bits``. The leak k of a layer
    (``getattr(layer, "leak", 0)``: IRs without the field are IF) is copied, like ``reset``.
    """
    layers = []
    for layer in net.layers:
        kw = layer.energy_spec(net.info(layer.name), net.timesteps)
        kw.setdefault("leak", getattr(layer, "leak", 0))
        layers.append(LayerSpec(**kw))
    return Arch(input_shape=net.input.shape, layers=tuple(layers), name=net.name,
                in_bits=net.input.in_bits)
