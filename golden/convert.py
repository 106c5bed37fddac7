"""ANN-to-SNN conversion by layer-wise calibration (seed 004, docs/convert.md).

A trained PyTorch ReLU network (a ``torch.nn.Sequential`` of ``Linear``, ``Conv2d``,
``BatchNorm1d/2d`` (folded into the layer before it), ``ReLU``, ``MaxPool2d``/``AvgPool2d``,
``Flatten``; ``Dropout`` and ``Identity`` are skipped) becomes a multi-level SNN in the IR:

- every ``Linear``/``Conv2d`` followed by a ReLU is a spiking ``dense``/``conv2d`` layer with N
  levels; the last one (no ReLU) is the readout; pools map to the IR's pools;
- the largest output per timestep ``λ = N·θ`` of each spiking layer is the minimiser over a grid
  of the MSE between ``ClipFloor(a, T·N, λ)`` and ``ReLU(a)`` on the ANN's pre-activations ``a``
  of the calibration set (seed 004 Eqs. 5 and 8, :func:`threshold_search`);
- its bias is then corrected by the per-channel mean of ``ReLU(a) − r`` (Eq. 6), where r is the
  average output ``θ·Σ_t z(t)/T`` of the *integer* SNN (:func:`golden.reference.run` on the
  layers converted so far), so that the correction absorbs the temporal error of the earlier
  layers and the rounding of the weights too; the readout's bias by the mean logit error;
- the float layers are quantized by :func:`golden.export.export` (exact integer thresholds,
  rounded weights and biases).

AdaFire (seed 004 §3.1) chooses the levels N of every spiking layer: the sensitivity
``S_i(k)`` (Eq. 9) is the mean KL divergence between the ANN's softmax output and that of the
integer SNN in which layer i has k levels (every other layer the base levels), the energy of each
choice comes from :func:`golden.energy.compare.ir_report` (the Lemaire model on the exact
golden counters), and :func:`pareto_search` solves Eq. 11 layer by layer over a Pareto frontier.
SSC (§3.2, Eqs. 12–15) chooses a threshold ratio ρ per layer (``λ ← ρ·λ``, so events carry ρ
times the value) minimising the energy under a sensitivity budget, with the same search.

A :class:`golden.train.QCFS` activation in place of a ReLU (seed 003, ``mlsnn train --qcfs``)
brings its own threshold: the layer takes the trained λ (times ρ) and ``v0 = shift·θ`` instead
of the threshold search, and no bias correction (nor the readout's, when every spiking layer is
QCFS), so that at T·N = Q the SNN computes what the ANN computes up to the integer rounding.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .errors import MlsnnError

__all__ = [
    "SUPPORTED", "load_ann", "ann_from_arch", "Stage", "parse_ann", "ann_forward",
    "clip_floor", "threshold_search", "channel_mean", "Converter", "pareto_search",
    "kl_sensitivity", "adafire", "ssc", "ann_accuracy", "format_layer", "convert",
]

#: Constructor keywords of the supported modules (the architecture JSON takes these).
SUPPORTED = {
    "Linear": ("in_features", "out_features", "bias"),
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
               "groups", "bias", "padding_mode"),
    "BatchNorm1d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "BatchNorm2d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "ReLU": (),
    "QCFS": ("levels", "shift"),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                  "divisor_override"),
    "Flatten": ("start_dim", "end_dim"),
    "Dropout": ("p",),
    "Identity": (),
}
#: Modules that are the identity in eval mode.
SKIPPED = ("Dropout", "Identity")
_SUPPORTED_TEXT = "Linear, Conv2d, BatchNorm1d/2d, ReLU, MaxPool2d, AvgPool2d, Flatten " \
                  "(Dropout, Identity skipped)"


# -- loading --------------------------------------------------------------------------------

def _module_class(name):
    """The class of a module type named in :data:`SUPPORTED`."""
    if name == "QCFS":
        from .train import QCFS
        return QCFS
    return getattr(nn, name)


def _unsupported(where, name):
    return MlsnnError(f"{where}: unsupported module '{name}' (convert takes a Sequential of "
                      f"{_SUPPORTED_TEXT})")


def _rebuild_scripted(scripted, where):
    """A TorchScript ``Sequential`` as an eager ``nn.Sequential`` with the same weights."""
    if scripted.original_name != "Sequential":
        raise MlsnnError(f"{where}: holds a TorchScript '{scripted.original_name}', convert "
                         f"needs a torch.nn.Sequential")
    layers = []
    for idx, (_, child) in enumerate(scripted.named_children()):
        name = child.original_name
        if name == "Sequential":
            layers.append(_rebuild_scripted(child, where))
            continue
        if name not in SUPPORTED:
            raise _unsupported(f"{where}: module {idx}", name)
        kwargs = {}
        for key in SUPPORTED[name]:
            value = getattr(child, key)
            kwargs[key] = (value is not None) if key == "bias" else value
        module = _module_class(name)(**kwargs)
        module.load_state_dict(child.state_dict())
        layers.append(module)
    return nn.Sequential(*layers)


def ann_from_arch(layers, state_dict, *, where="arch"):
    """Build the ``nn.Sequential`` described by ``layers`` and load ``state_dict`` into it.

    Parameters
    ----------
    layers : list of dict
        ``{"type": "Linear", "in_features": 64, "out_features": 32}``: the module's class name
        and its constructor keywords (:data:`SUPPORTED`); state dict keys are ``"<index>.<name>"``
        as ``nn.Sequential`` names them.
    state_dict : dict of str → torch.Tensor

    Raises
    ------
    MlsnnError
        An unsupported module, a bad keyword, or a state dict that does not match.
    """
    if not isinstance(layers, list) or not layers:
        raise MlsnnError(f"{where}: must be a non-empty JSON list of layers like "
                         f"{{\"type\": \"Linear\", \"in_features\": 64, \"out_features\": 10}}")
    modules = []
    for idx, d in enumerate(layers):
        if not isinstance(d, dict) or not isinstance(d.get("type"), str):
            raise MlsnnError(f"{where}: layer {idx} must be an object with a 'type'")
        kind = d["type"]
        if kind not in SUPPORTED:
            raise _unsupported(f"{where}: layer {idx}", kind)
        kwargs = {k: v for k, v in d.items() if k != "type"}
        unknown = sorted(set(kwargs) - set(SUPPORTED[kind]))
        if unknown:
            raise MlsnnError(f"{where}: layer {idx} ({kind}) has unknown key '{unknown[0]}' "
                             f"(it takes {', '.join(SUPPORTED[kind]) or 'no keys'})")
        try:
            modules.append(_module_class(kind)(**kwargs))
        except (TypeError, ValueError, RuntimeError) as e:
            raise MlsnnError(f"{where}: layer {idx} ({kind}): {e}") from None
    model = nn.Sequential(*modules)
    _load_matching(model, state_dict, where)
    return model


def _load_matching(model, state_dict, where):
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [k for k in expected if k in state_dict
             and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:4])}")
        for k in wrong[:2]:
            parts.append(f"{k} has shape {tuple(state_dict[k].shape)} in the state dict, "
                         f"{tuple(expected[k].shape)} in the architecture")
        raise MlsnnError(f"the state dict does not match the architecture {where}: "
                         f"{'; '.join(parts)}")
    model.load_state_dict(state_dict)


def load_ann(path, arch=None):
    """Load a ReLU ANN: a TorchScript file of a ``Sequential``, or a state dict (``torch.save``
    of ``model.state_dict()``) plus ``arch``, a JSON file (or list) of layers
    (:func:`ann_from_arch`). Returns an eval-mode ``nn.Sequential``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MlsnnError(f"{path}: no such file")
    if arch is not None and not isinstance(arch, list):
        if not os.path.isfile(arch):
            raise MlsnnError(f"{arch}: no such file")
    scripted = None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            is_script = any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())
        if is_script:
            try:
                with warnings.catch_warnings():
                    # torch deprecates TorchScript; its files are still what users have.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    scripted = torch.jit.load(path, map_location="cpu")
            except (RuntimeError, ValueError) as e:
                raise MlsnnError(f"{path}: not a readable TorchScript file "
                                 f"({str(e).splitlines()[0]})") from None
    if scripted is not None:
        if arch is not None:
            raise MlsnnError(f"{path} is a TorchScript file: it has its own architecture, "
                             f"drop --arch")
        model = _rebuild_scripted(scripted, path)
    else:
        try:
            doc = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:      # torch raises many types for a file that is no checkpoint
            raise MlsnnError(f"{path}: neither a TorchScript file nor a state dict "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
                from None
        if isinstance(doc, dict) and doc.get("format") == "mlsnn-float-model":
            raise MlsnnError(f"{path}: a checkpoint of 'mlsnn train' (a spiking net), not an "
                             f"ANN: use 'mlsnn export'")
        if not isinstance(doc, dict) or not all(isinstance(k, str) and torch.is_tensor(v)
                                                for k, v in doc.items()):
            raise MlsnnError(f"{path}: not a state dict (a dict of tensors) nor a TorchScript "
                             f"file")
        if arch is None:
            raise MlsnnError(f"{path} is a state dict: give its architecture with --arch "
                             f"arch.json (docs/convert.md)")
        where = "(list)"
        if not isinstance(arch, list):
            where = os.fspath(arch)
            with open(arch, encoding="utf-8") as f:
                try:
                    arch = json.load(f)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise MlsnnError(f"{where}: malformed JSON ({e})") from None
        model = ann_from_arch(arch, doc, where=where)
    for name, value in model.state_dict().items():
        if value.is_floating_point() and not bool(value.isfinite().all()):
            raise MlsnnError(f"{path}: the ANN's '{name}' holds non-finite values")
    return model.eval()


# -- the ANN as stages ----------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Stage:
    """One step of the ANN in IR terms (BatchNorm folded, Flatten implicit).

    ``kind`` is ``"dense"``, ``"conv2d"`` (``weight``, ``bias`` float64 in torch's layout,
    ``stride``, ``padding``; ``relu`` true for a spiking layer, false for the readout),
    ``"maxpool2d"`` or ``"avgpool2d"`` (``kernel``). ``index`` is the position of the module
    in the Sequential, for messages. ``qcfs`` is ``(λ, Q, shift)`` of a spiking layer whose
    activation is a QCFS rather than a ReLU.
    """

    kind: str
    index: int
    weight: Optional[torch.Tensor] = None
    bias: Optional[torch.Tensor] = None
    stride: int = 1
    padding: int = 0
    relu: bool = False
    kernel: int = 0
    qcfs: Optional[tuple] = None


def _flatten_modules(model):
    out = []
    for m in model.children() if isinstance(model, nn.Sequential) else [model]:
        out.extend(_flatten_modules(m) if isinstance(m, nn.Sequential) else [m])
    return out


def _pair(v, what, where):
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise MlsnnError(f"{where}: {what} {tuple(v)} differs between height and width "
                             f"(the IR takes square ones)")
        v = v[0]
    return int(v)


def _pool_kernel(m, where):
    k = _pair(m.kernel_size, "kernel_size", where)
    s = _pair(m.stride if m.stride is not None else k, "stride", where)
    if s != k or _pair(m.padding, "padding", where) != 0 or m.ceil_mode or \
            _pair(getattr(m, "dilation", 1), "dilation", where) != 1 or \
            getattr(m, "divisor_override", None) is not None:
        raise MlsnnError(f"{where}: the IR's pools have stride = kernel, no padding, no "
                         f"dilation, no ceil_mode (kernel {k}, stride {s})")
    return k


def parse_ann(model):
    """The :class:`Stage` s of a ReLU ``nn.Sequential`` (BatchNorm folded into the layer
    before it; a MaxPool2d between a layer and its ReLU moved after the ReLU, which it commutes
    with).

    Raises
    ------
    MlsnnError
        An unsupported module (named), or one in a place the SNN cannot follow.
    """
    from .export import fold_batchnorm

    if not isinstance(model, nn.Module):
        raise MlsnnError(f"convert needs a torch.nn.Sequential, not {type(model).__name__}")
    stages = []
    pending = None          # the last weight stage, still open for BN / pool / ReLU
    flat = False
    for idx, m in enumerate(_flatten_modules(model)):
        name = type(m).__name__
        where = f"ANN module {idx} ({name})"
        if name in SKIPPED:
            continue
        if name not in SUPPORTED:
            raise _unsupported(f"ANN module {idx}", name)
        if name in ("Linear", "Conv2d"):
            if pending is not None:
                raise MlsnnError(f"{where}: the {pending['kind']} layer at module "
                                 f"{pending['index']} has no ReLU after it and is not the "
                                 f"last layer")
            if stages and not stages[-1].relu and stages[-1].kind in ("dense", "conv2d"):
                raise MlsnnError(f"{where}: follows a layer without ReLU")
            if name == "Conv2d":
                if flat:
                    raise MlsnnError(f"{where}: a Conv2d after a Flatten")
                if m.groups != 1 or _pair(m.dilation, "dilation", where) != 1 or \
                        m.padding_mode != "zeros" or isinstance(m.padding, str):
                    raise MlsnnError(f"{where}: the IR's conv2d has groups=1, dilation=1 and "
                                     f"numeric zero padding")
                stride = _pair(m.stride, "stride", where)
                padding = _pair(m.padding, "padding", where)
                k = _pair(m.kernel_size, "kernel_size", where)
                if padding >= k:
                    raise MlsnnError(f"{where}: padding {padding} must be smaller than the "
                                     f"kernel {k}")
            else:
                stride, padding = 1, 0
            bias = m.bias.detach() if m.bias is not None else None
            pending = dict(kind="dense" if name == "Linear" else "conv2d", index=idx,
                           weight=m.weight.detach(), bias=bias, stride=stride,
                           padding=padding, pool=None, bn=False)
        elif name.startswith("BatchNorm"):
            if pending is None or pending["bn"] or pending["pool"] is not None:
                raise MlsnnError(f"{where}: a BatchNorm must follow a Linear or Conv2d "
                                 f"directly to be folded into it")
            pending["weight"], pending["bias"] = fold_batchnorm(pending["weight"],
                                                                pending["bias"], m)
            pending["bn"] = True
        elif name in ("ReLU", "QCFS"):
            if pending is None:
                raise MlsnnError(f"{where}: a {name} must follow a Linear or Conv2d")
            pool = pending.pop("pool")
            pending.pop("bn")
            q = (float(m.lam.detach()), m.levels, m.shift) if name == "QCFS" else None
            stages.append(Stage(relu=True, qcfs=q, **{k: v for k, v in pending.items()}))
            if pool is not None:
                stages.append(pool)
            pending = None
        elif name in ("MaxPool2d", "AvgPool2d"):
            kind = "maxpool2d" if name == "MaxPool2d" else "avgpool2d"
            pool = Stage(kind=kind, index=idx, kernel=_pool_kernel(m, where))
            if flat:
                raise MlsnnError(f"{where}: a pool after a Flatten")
            if pending is not None and kind == "maxpool2d" and pending["pool"] is None \
                    and pending["kind"] == "conv2d":
                pending["pool"] = pool      # max(ReLU(a)) = ReLU(max(a))
            elif pending is None and stages and stages[-1].kind != "dense" and \
                    (stages[-1].relu or stages[-1].kind.endswith("pool2d")):
                stages.append(pool)
            else:
                raise MlsnnError(f"{where}: a pool must follow a ReLU (an average pool of "
                                 f"pre-activations has no IR equivalent)")
        elif name == "Flatten":
            if (m.start_dim, m.end_dim) != (1, -1):
                raise MlsnnError(f"{where}: only Flatten(start_dim=1, end_dim=-1)")
            flat = True
    if pending is None:
        raise MlsnnError("the ANN must end with a Linear or Conv2d without ReLU (the readout)")
    if pending["pool"] is not None:
        raise MlsnnError(f"ANN module {pending['pool'].index}: a pool after the readout")
    pending.pop("pool")
    pending.pop("bn")
    stages.append(Stage(relu=False, **pending))
    for st in stages:
        if st.weight is not None:
            object.__setattr__(st, "weight", st.weight.to(torch.float64))
            b = st.bias if st.bias is not None else torch.zeros(st.weight.shape[0])
            object.__setattr__(st, "bias", b.detach().to(torch.float64))
    return tuple(stages)


def _activation(st, pre):
    """The ANN's activation of stage ``st``: ReLU, QCFS, or none (the readout)."""
    if st.qcfs is not None:
        lam, q, shift = st.qcfs
        return clip_floor(pre, q, lam, shift)
    return F.relu(pre) if st.relu else pre


def ann_forward(stages, x):
    """Run the stages in float64 on ``x`` ``[B, *shape]`` (float values, not pixels).

    Returns a list with, per stage, ``(pre, out)``: ``pre`` the pre-activation of a weight stage
    (its output before the ReLU; the logits for the readout) flattened ``[B, n]``, ``out`` the
    stage's output (unflattened); for pools ``pre`` is ``None``.
    """
    h = torch.as_tensor(x, dtype=torch.float64)
    out = []
    for st in stages:
        try:
            if st.kind == "dense":
                pre = F.linear(h.reshape(h.shape[0], -1), st.weight, st.bias)
                h = _activation(st, pre)
            elif st.kind == "conv2d":
                pre = F.conv2d(h, st.weight, st.bias, stride=st.stride, padding=st.padding)
                h = _activation(st, pre)
                pre = pre.reshape(pre.shape[0], -1)
            else:
                pre = None
                pool = F.max_pool2d if st.kind == "maxpool2d" else F.avg_pool2d
                h = pool(h, st.kernel)
        except RuntimeError as e:
            raise MlsnnError(f"ANN module {st.index} ({st.kind}) does not run on inputs of "
                             f"shape {tuple(h.shape)}: {str(e).splitlines()[0]}") from None
        out.append((pre, h))
    return out


# -- calibration (Eqs. 5, 6, 8) -------------------------------------------------------------

def clip_floor(a, steps, lam, shift=0.0):
    """``ClipFloor(a, steps, λ) = λ/steps · clip(⌊a·steps/λ + shift⌋, 0, steps)`` (seed 004
    Eq. 8 with steps = T·φ): the average output of an IF neuron with threshold θ = λ/φ and
    ``v0 = shift·θ`` over T timesteps under a constant input a. With ``shift = 1/2`` and
    steps = Q it is seed 003's QCFS (Eq. 2)."""
    return lam / steps * torch.clamp(torch.floor(a * (steps / lam) + shift), 0, steps)


def threshold_search(a, steps, grid=100):
    """The λ minimising ``mean((ClipFloor(a, steps, λ) − ReLU(a))²)`` over the grid
    ``λ_k = k/grid · max(a)``, k = 1..grid (seed 004 Eq. 8).

    Returns
    -------
    lam : float
    mse : float
        The MSE at λ.
    lams, mses : numpy.ndarray
        The grid and its MSEs.
    """
    a = torch.as_tensor(a, dtype=torch.float64)
    top = float(a.max()) if a.numel() else 0.0
    if not top > 0:
        return 1.0, 0.0, np.array([1.0]), np.array([0.0])   # a dead layer: never fires
    target = F.relu(a)
    lams = top * np.arange(1, grid + 1) / grid
    mses = np.array([float(((clip_floor(a, steps, lam) - target) ** 2).mean()) for lam in lams])
    k = int(np.argmin(mses))
    return float(lams[k]), float(mses[k]), lams, mses


def channel_mean(e, n_channels):
    """Per-channel mean of ``e`` ``[B, n]`` (CHW flattened, ``n_channels`` channels): the
    spatial and batch mean of Eq. 6."""
    return e.reshape(e.shape[0], n_channels, -1).mean(dim=(0, 2))


def kl_sensitivity(ann_logits, snn_logits):
    """``1/N Σ_j KL(softmax(ANN; x_j) ‖ softmax(SNN; x_j))`` (seed 004 Eq. 9)."""
    p = F.log_softmax(torch.as_tensor(ann_logits, dtype=torch.float64), dim=1)
    q = F.log_softmax(torch.as_tensor(snn_logits, dtype=torch.float64), dim=1)
    return float((p.exp() * (p - q)).sum(dim=1).mean())


class _Exportable(nn.Module):
    """The attributes of a :class:`golden.train.SpikingNet` that :func:`golden.export.export`
    reads, built from converted float layers."""

    def __init__(self, config, specs, synapses, neurons):
        super().__init__()
        self.config = config
        self.layers = tuple(specs)
        self.synapses = nn.ModuleDict(synapses)
        self.neurons = nn.ModuleDict(neurons)


def _synapse(st, bias):
    if st.kind == "dense":
        m = nn.Linear(st.weight.shape[1], st.weight.shape[0]).to(torch.float64)
    else:
        m = nn.Conv2d(st.weight.shape[1], st.weight.shape[0], st.weight.shape[2],
                      stride=st.stride, padding=st.padding).to(torch.float64)
    with torch.no_grad():
        m.weight.copy_(st.weight)
        m.bias.copy_(bias)
    return m


class Converter:
    """Layer-wise calibration of one ANN on one calibration set, for any per-layer choice of
    levels N and threshold ratio ρ (results of common prefixes are cached).

    Parameters
    ----------
    stages : tuple of Stage
        :func:`parse_ann`.
    x_calib : numpy.ndarray
        Calibration inputs (unsigned integer pixels) ``[B, *shape]``.
    input_scale : float
        Float value of one pixel unit in the ANN's input.
    in_bits : int
    timesteps : int
    w_bits : int
    grid : int
        Points of the threshold search.
    """

    def __init__(self, stages, x_calib, *, input_scale, in_bits, timesteps, w_bits=8,
                 grid=100):
        from .train import LayerSpec

        self._LayerSpec = LayerSpec
        self.stages = stages
        self.x = np.asarray(x_calib)
        self.input_shape = tuple(self.x.shape[1:])
        self.input_scale = float(input_scale)
        self.in_bits = in_bits
        self.timesteps = timesteps
        self.w_bits = w_bits
        self.grid = grid
        self.ann = ann_forward(stages, torch.from_numpy(self.x).to(torch.float64) * input_scale)
        self.names = self._names()
        #: Indices of the spiking stages (those with a choice of N and ρ).
        self.spiking = [i for i, st in enumerate(stages) if st.relu]
        self._cache = {}
        self._search = {}

    def _names(self):
        names, count = [], {}
        for i, st in enumerate(self.stages):
            if st.weight is not None and not st.relu:
                names.append("out")
                continue
            base = {"dense": "fc", "conv2d": "conv"}.get(st.kind, "pool")
            count[base] = count.get(base, 0) + 1
            names.append(f"{base}{count[base]}")
        return names

    @property
    def layer_names(self):
        """Names of the spiking layers, in order."""
        return [self.names[i] for i in self.spiking]

    def _export(self, built, levels, extra=None):
        from .export import export

        specs, syn, neu = [], {}, {}
        for spec, s, n in built:
            specs.append(spec)
            if s is not None:
                syn[spec.name] = s
            if n is not None:
                neu[spec.name] = n
        if extra is not None:
            specs.append(extra[0])
            syn[extra[0].name] = extra[1]
        cfg = SimpleNamespace(input_scale=self.input_scale, input_shape=self.input_shape,
                              in_bits=self.in_bits, timesteps=self.timesteps, arch="ann",
                              levels=levels)
        return export(_Exportable(cfg, specs, syn, neu), w_bits=self.w_bits)

    def _probe(self, built, levels):
        """The prefix ``built`` with a silent readout: the golden events of its last layer on
        the calibration set, and the export report."""
        from .reference import run

        last = built[-1][0].name
        spec = self._LayerSpec(name="probe", kind="dense", inputs=(last,), readout=True)
        dummy = nn.Linear(self.ann[self.names.index(last)][1][0].numel(), 1).to(torch.float64)
        with torch.no_grad():
            dummy.weight.zero_()
            dummy.bias.zero_()
        net, rep = self._export(built, levels, (spec, dummy))
        return run(net, self.x).events[last], rep

    def build(self, levels, rho=None):
        """Calibrate every layer for per-spiking-layer ``levels`` (and ``rho``, default 1).

        Returns
        -------
        net : golden.ir.Network
        report : list of dict
            Per layer: ``name``, ``kind``; spiking layers ``levels``, ``rho``, ``lambda`` (the
            largest output per timestep, N·θ), ``theta``, ``mse`` (Eq. 8 at λ before ρ),
            ``mean_error_before``/``after`` (mean over channels of |the per-channel mean
            error| before and after the bias correction), ``threshold`` (θ_int); the readout
            ``mean_error_before``/``after`` in logit units.
        logits : torch.Tensor
            The SNN's logits in float units (readout potential / (Q·T)) on the calibration set.
        result : golden.reference.Result
            The golden run on the calibration set.
        """
        from .neuron import MultiLevelIF

        n = len(self.spiking)
        levels = tuple(int(v) for v in levels)
        rho = tuple(float(r) for r in rho) if rho is not None else (1.0,) * n
        if len(levels) != n or len(rho) != n:
            raise MlsnnError(f"levels and rho need one value per spiking layer ({n})")
        built, report, k = [], [], 0
        prev, source = "input", None        # source: the neuron whose events pass on
        for i, st in enumerate(self.stages):
            name = self.names[i]
            if st.weight is not None and not st.relu:
                net, logits, res, rep = self._readout(built, st, name, prev,
                                                      max(levels, default=1))
                report.append(rep)
                return net, report, logits, res
            k += st.relu
            key = (i, levels[:k], rho[:k])          # what this stage's calibration depends on
            if key not in self._cache:
                if st.relu:
                    self._cache[key] = self._calibrate(built, st, name, prev, levels[k - 1],
                                                       rho[k - 1], i)
                else:
                    neuron = None
                    if st.kind == "avgpool2d":
                        # θ = θ_in: the integer pool sums levels into θ_int = k² (exact).
                        neuron = MultiLevelIF(levels=source.levels,
                                              threshold=source.threshold)
                    spec = self._LayerSpec(name=name, kind=st.kind, inputs=(prev,),
                                           kernel=st.kernel)
                    self._cache[key] = ((spec, None, neuron),
                                        {"name": name, "kind": st.kind, "kernel": st.kernel})
            entry, rep = self._cache[key]
            built.append(entry)
            report.append(rep)
            prev = name
            if entry[2] is not None:            # a max pool passes its input's scale on
                source = entry[2]
        raise MlsnnError("the ANN has no readout")     # parse_ann guarantees one

    def _calibrate(self, built, st, name, prev, N, rho, i):
        """Eq. 8 (threshold) and Eq. 6 (bias) for spiking stage ``i``."""
        from .neuron import MultiLevelIF

        T = self.timesteps
        pre = self.ann[i][0]
        target = _activation(st, pre)
        if st.qcfs is None:
            lam, mse, _, _ = threshold_search(pre, T * N, self.grid)
            shift = 0.0
        else:       # QCFS: its λ and shift; MSE of the SNN's levels against the QCFS (0 at T·N = Q)
            lam, _, shift = st.qcfs
            mse = float(((clip_floor(pre, T * N, lam, shift) - target) ** 2).mean())
        lam *= rho                                  # SSC, Eq. 12
        theta = lam / N
        bias = st.bias.clone()
        spec = self._LayerSpec(name=name, kind=st.kind, inputs=(prev,))
        neuron = MultiLevelIF(levels=N, threshold=lam, v0=shift * theta)
        errors = []
        for _ in range(2 if st.qcfs is None else 1):
            entry = (spec, _synapse(st, bias), neuron)
            ev, exp_rep = self._probe(built + [entry], N)
            r = torch.from_numpy(ev).to(torch.float64).sum(0) * (theta / T)
            mu = channel_mean(target - r, st.weight.shape[0])
            errors.append(float(mu.abs().mean()))
            if len(errors) == 1:
                bias = bias + mu                    # Eq. 6
        rep = {"name": name, "kind": st.kind, "levels": N, "rho": rho, "lambda": lam,
               "theta": theta, "mse": mse, "mean_error_before": errors[0],
               "mean_error_after": errors[-1], "threshold": exp_rep[name]["threshold"]}
        if st.qcfs is not None:
            rep.update(qcfs_levels=st.qcfs[1],
                       v0=int(round(shift * theta * exp_rep[name]["q"])))
        return entry, rep

    def _readout(self, built, st, name, prev, levels):
        """Eq. 6 on the readout, which is linear: the correction zeroes its mean logit error
        up to the rounding of the integer bias."""
        from .reference import run

        T = self.timesteps
        target = self.ann[-1][0]
        spec = self._LayerSpec(name=name, kind=st.kind, inputs=(prev,), readout=True)
        bias = st.bias.clone()
        errors = []
        qcfs_only = all(self.stages[j].qcfs is not None for j in self.spiking) and self.spiking
        for _ in range(1 if qcfs_only else 2):
            net, exp_rep = self._export(built + [(spec, _synapse(st, bias), None)], levels)
            res = run(net, self.x)
            logits = torch.from_numpy(res.readout).to(torch.float64) / (exp_rep[name]["q"] * T)
            mu = channel_mean(target - logits, st.weight.shape[0])
            errors.append(float(mu.abs().mean()))
            if len(errors) == 1:
                bias = bias + mu
        rep = {"name": name, "kind": st.kind, "readout": True, "q": exp_rep[name]["q"],
               "mean_error_before": errors[0], "mean_error_after": errors[-1],
               "bias_corrected": len(errors) > 1}
        return net, logits, res, rep


# -- AdaFire and SSC (Eqs. 9, 11, 12-15) ----------------------------------------------------

def pareto_search(tables, log=None):
    """Eq. 11's layer-wise dynamic program over a Pareto frontier.

    Parameters
    ----------
    tables : list of list of (choice, S, E)
        Per layer, per choice: its sensitivity and energy (additive over layers).
    log : callable or None

    Returns
    -------
    list of (S_sum, E_sum, choices)
        The Pareto frontier of the whole network, by rising energy (falling sensitivity): no
        combination of choices has both a lower (or equal) sum S and a lower (or equal) sum E
        than a point of it, unless it equals it.
    """
    log = log or (lambda line: None)
    front = [(0.0, 0.0, ())]
    for li, rows in enumerate(tables):
        cand = sorted(((s + S, e + E, ch + (c,)) for s, e, ch in front for c, S, E in rows),
                      key=lambda p: (p[1], p[0]))
        front = []
        for p in cand:
            if not front or p[0] < front[-1][0]:
                front.append(p)
        log(f"  DP layer {li + 1}/{len(tables)}: {len(cand)} combinations, {len(front)} on "
            f"the Pareto frontier")
    return front


@dataclass
class _Point:
    """One converted configuration: its levels, ρ, net, sensitivity, energy."""

    levels: tuple
    rho: tuple
    net: object
    report: list
    logits: torch.Tensor
    result: object
    sensitivity: float
    energy: float


class _Search:
    """Converts configurations and prices them (KL sensitivity, Lemaire energy)."""

    def __init__(self, conv, x_energy, fifo_depth, log):
        self.conv, self.x_energy, self.fifo_depth, self.log = conv, x_energy, fifo_depth, log
        self._points = {}

    def point(self, levels, rho=None):
        from .energy.compare import ir_report

        rho = tuple(rho) if rho is not None else (1.0,) * len(levels)
        key = (tuple(levels), rho)
        if key not in self._points:
            net, report, logits, res = self.conv.build(levels, rho)
            s = kl_sensitivity(self.conv.ann[-1][0], logits)
            e = float(ir_report(net, self.x_energy, fifo_depth=self.fifo_depth)
                      ["summary"]["total"])
            self._points[key] = _Point(tuple(levels), rho, net, report, logits, res, s, e)
        return self._points[key]

    def tables(self, base, choices, field):
        """Per layer, per choice: (choice, S_i, E − E_base) with every other layer at ``base``
        (``field`` ``"levels"`` or ``"rho"``)."""
        b = self.point(base.levels, base.rho)
        out = []
        for i, name in enumerate(self.conv.layer_names):
            rows = []
            for c in choices:
                cfg = {"levels": list(base.levels), "rho": list(base.rho)}
                cfg[field][i] = c
                p = self.point(cfg["levels"], cfg["rho"])
                rows.append((c, p.sensitivity, p.energy - b.energy))
                self.log(f"  {name:<6} {'N' if field == 'levels' else 'rho'}={c:<4g} "
                         f"S={p.sensitivity:.4e}  E={p.energy:.4g} nJ "
                         f"({p.energy - b.energy:+.4g})")
            out.append(rows)
        return out


def adafire(search, base, choices, budget):
    """AdaFire (seed 004 §3.1): per-layer levels minimising Σ S_i(N_i) (Eq. 9) under
    ``E_base + Σ ΔE_i(N_i) ≤ budget`` (Eq. 11); returns the chosen :class:`_Point` (checked: its
    real energy meets the budget)."""
    log, L = search.log, len(base.levels)
    cheapest = search.point((min(choices),) * L, base.rho)
    if cheapest.energy > budget:
        raise MlsnnError(f"--energy-budget {budget:g} nJ: no choice of levels meets it (the "
                         f"cheapest, N={min(choices)} in every layer, needs "
                         f"{cheapest.energy:.4g} nJ per inference)")
    log(f"AdaFire: sensitivity (Eq. 9) and energy of each layer's N, the others at "
        f"N={list(base.levels)} (E_base = {base.energy:.4g} nJ)")
    front = pareto_search(search.tables(base, choices, "levels"), log)
    feasible = sorted((p for p in front if base.energy + p[1] <= budget), key=lambda p: p[0])
    for s_pred, e_pred, ch in feasible[:5]:
        p = search.point(ch, base.rho)
        log(f"  candidate N={list(ch)}: predicted S_sum={s_pred:.4e} E={base.energy + e_pred:.4g}"
            f" nJ; converted: S={p.sensitivity:.4e} E={p.energy:.4g} nJ")
        if p.energy <= budget:
            return p
    log(f"  no frontier point meets the budget once converted: N={min(choices)} everywhere")
    return cheapest


def ssc(search, base, rhos, slack=0.0):
    """SSC (seed 004 §3.2): per-layer threshold ratios ρ (Eqs. 12–14) minimising
    ``Σ E_i(ρ_i)`` under ``Σ S_i(ρ_i) ≤ S_target`` (Eq. 15), ``S_target = (1 + slack)·Σ_i
    S_i(1)`` (the seed's default: the sensitivity before SSC); ``base`` (ρ = 1) when the choice,
    converted, costs more than it."""
    log, L = search.log, len(base.levels)
    rhos = sorted(set(float(r) for r in rhos) | {1.0})
    log(f"SSC: sensitivity and energy of each layer's rho, the others at 1, N={list(base.levels)}")
    tables = search.tables(base, rhos, "rho")
    target = (1.0 + slack) * sum(next(S for c, S, _ in rows if c == 1.0) for rows in tables)
    front = pareto_search(tables, log)
    feasible = sorted((p for p in front if p[0] <= target), key=lambda p: p[1])
    s_pred, e_pred, ch = feasible[0]           # rho = 1 everywhere is always feasible
    p = search.point(base.levels, ch)
    log(f"  S_target={target:.4e}: rho={list(ch)} predicted S_sum={s_pred:.4e} "
        f"E={base.energy + e_pred:.4g} nJ; converted: S={p.sensitivity:.4e} E={p.energy:.4g} nJ")
    if p.energy > base.energy:
        log("  converted, it costs more than rho = 1: rho = 1 everywhere")
        return base
    return p


def format_layer(rep):
    """One line of the calibration report of a layer (:meth:`Converter.build`)."""
    name = f"  {rep['name']:<6}"
    if rep.get("readout"):
        if not rep.get("bias_corrected", True):
            return (f"{name} readout  mean logit error {rep['mean_error_before']:.2e} (QCFS "
                    f"network: no bias correction)")
        return (f"{name} readout  mean logit error {rep['mean_error_before']:.2e} -> "
                f"{rep['mean_error_after']:.2e} (bias correction, Eq. 6)")
    if "lambda" not in rep:
        return f"{name} {rep['kind']} {rep['kernel']}x{rep['kernel']}"
    if "qcfs_levels" in rep:
        return (f"{name} {rep['kind']:<7} N={rep['levels']:<3} rho={rep['rho']:<4g} "
                f"lambda={rep['lambda']:<9.4g} theta_int={rep['threshold']:<5} "
                f"v0_int={rep['v0']:<4} (QCFS Q={rep['qcfs_levels']}: its lambda, no bias "
                f"correction) MSE vs QCFS={rep['mse']:.3e}  mean error "
                f"{rep['mean_error_after']:.2e}")
    return (f"{name} {rep['kind']:<7} N={rep['levels']:<3} rho={rep['rho']:<4g} "
            f"lambda={rep['lambda']:<9.4g} theta_int={rep['threshold']:<5} "
            f"MSE={rep['mse']:.3e}  mean error {rep['mean_error_before']:.2e} -> "
            f"{rep['mean_error_after']:.2e}")


def ann_accuracy(model, x, y, input_scale):
    """Test accuracy of the (unfolded) ANN on pixels ``x`` times ``input_scale``."""
    xs = torch.as_tensor(np.asarray(x), dtype=torch.float32) * input_scale
    first = next((m for m in _flatten_modules(model) if type(m).__name__ not in SKIPPED), None)
    if isinstance(first, nn.Linear):
        xs = xs.reshape(xs.shape[0], -1)
    with torch.no_grad():
        try:
            out = model(xs)
        except RuntimeError as e:
            raise MlsnnError(f"the ANN does not run on inputs of shape {tuple(xs.shape)}: "
                             f"{str(e).splitlines()[0]}") from None
    return float((out.argmax(1).numpy() == np.asarray(y)).mean())


def convert(model, data, *, timesteps, levels, w_bits=8, input_scale=None, calib_samples=1024,
            grid=100, adafire_budget=None, level_choices=(1, 2, 4, 8), ssc_rhos=None,
            ssc_slack=0.0, energy_samples=256, fifo_depth=None, log=None):
    """Convert a ReLU ``nn.Sequential`` to a multi-level SNN and evaluate it.

    Parameters
    ----------
    model : torch.nn.Sequential
        Put in eval mode (BatchNorm's running statistics are folded, Dropout is skipped).
    data : golden.datasets.Dataset
        Calibration on (the first ``calib_samples`` of) its training split, accuracy on its
        test split.
    timesteps, levels : int
        T, and the levels N of every spiking layer (AdaFire's base).
    input_scale : float or None
        Float value of one pixel unit for the ANN (default: the dataset's).
    adafire_budget : float or None
        Energy budget in nJ per inference: choose per-layer N by AdaFire among
        ``level_choices``.
    ssc_rhos : sequence of float or None
        Choose a threshold ratio per layer among these by SSC (``ssc_slack``: S_target margin).
    energy_samples : int
        Calibration images the energy is measured on.

    Returns
    -------
    net : golden.ir.Network
    summary : dict
        ``layers`` (calibration report per layer), ``ann_accuracy``, ``snn_accuracy`` (test
        split), ``energy_nJ`` (energy samples), ``sensitivity`` (KL, calibration set),
        ``levels``, ``rho``; ``steps``: the same for the uniform start and after AdaFire and SSC
        (``method`` ``"uniform"``, ``"adafire"``, ``"ssc"``).
    """
    from .reference import run

    log = log or (lambda line: None)
    model.eval()
    scale = float(data.input_scale if input_scale is None else input_scale)
    stages = parse_ann(model)
    n_out = stages[-1].weight.shape[0]
    if n_out < data.num_classes:
        raise MlsnnError(f"the ANN has {n_out} outputs but {data.name} has "
                         f"{data.num_classes} classes")
    x_cal = data.x_train[:calib_samples]
    ann_acc = ann_accuracy(model, data.x_test, data.y_test, scale)
    conv = Converter(stages, x_cal, input_scale=scale, in_bits=data.in_bits,
                     timesteps=timesteps, w_bits=w_bits, grid=grid)
    L = len(conv.spiking)
    search = _Search(conv, x_cal[:energy_samples], fifo_depth, log)
    log(f"calibration on {len(x_cal)} training images (T={timesteps}, N={levels}):")
    best = search.point((levels,) * L)
    for rep in best.report:
        log(format_layer(rep))
    steps = [("uniform", best)]
    if adafire_budget is not None and L:
        steps.append(("adafire", adafire(search, steps[-1][1], level_choices, adafire_budget)))
    if ssc_rhos is not None and L:
        steps.append(("ssc", ssc(search, steps[-1][1], ssc_rhos, ssc_slack)))
    best = steps[-1][1]
    if best.levels != (levels,) * L or any(r != 1.0 for r in best.rho):
        log(f"calibration of the choice (N={list(best.levels)}, rho={list(best.rho)}):")
        for rep in best.report:
            log(format_layer(rep))
    x_test = best.net.check_inputs(data.x_test.reshape((-1,) + best.net.input.shape))

    def accuracy(point):
        res = run(point.net, x_test, record_events=False)
        return float((res.predictions == data.y_test).mean())

    net = best.net.replace(name=f"convert-T{timesteps}-N"
                           f"{'-'.join(map(str, best.levels)) or levels}")
    return net, {"layers": best.report, "ann_accuracy": ann_acc, "snn_accuracy": accuracy(best),
                 "energy_nJ": best.energy, "sensitivity": best.sensitivity,
                 "levels": list(best.levels), "rho": list(best.rho),
                 "steps": [{"method": m, "levels": list(p.levels), "rho": list(p.rho),
                            "energy_nJ": p.energy, "sensitivity": p.sensitivity,
                            "snn_accuracy": accuracy(p)} for m, p in steps],
                 "calib_samples": int(len(x_cal)), "n_test": int(len(data.y_test))}
