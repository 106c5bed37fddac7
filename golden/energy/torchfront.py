"""Torch front end: the energy of a torch model from the activity of a forward pass.

:func:`record` runs a model once with forward hooks and returns an
:class:`~golden.energy.arch.Arch` (the shapes of every ``Conv2d``/``Linear``, every 2-D pool and
every :class:`ResidualAdd`, in execution order) and the :class:`~golden.energy.lemaire.Activity`
of each:

- events entering a weighted layer = nonzero elements of its input tensor (all timesteps of all
  images, divided by the number of images); an input that comes straight from the model input
  (before any spiking module has fired) is a pixel stream (costed as MACs);
- Σz of spike inputs = sum of the input / the producing neuron's value per level (``theta`` of
  :class:`golden.neuron.MultiLevelIF`), N = its ``levels``;
- events leaving a weighted layer = nonzero outputs of the first spiking module that runs after
  it (a module is spiking when ``spiking(module)`` says so; by default MultiLevelIF and any
  module with a ``v_threshold`` attribute, as SpikingJelly neurons have);
- pools (``MaxPool2d``, ``AvgPool2d``, and the adaptive pools when they amount to one) are
  ``kind="pool"`` layers: a k×k window with stride k and no padding (the IR's pools; any other
  configuration is an :class:`~golden.errors.MlsnnError`); their events in are the nonzero
  elements of their input, their events out the nonzero elements of their output.

Limits: a SEW add done inside a torch model merges both streams into one tensor, so the next
layer sees the nonzero elements of the sum (an index active on both paths is one event, where the
event-driven hardware receives two): use the IR path for exact SEW counts. Functional adds
(``a + b`` in ``forward``) are invisible; use :class:`ResidualAdd`.

:class:`ArchNet` builds a torch model (random weights, multi-step ``[T, B, ...]``) from an
:class:`~golden.energy.arch.Arch`, e.g. VGG16 or ResNet18 at any input shape, ANN or SNN.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import MlsnnError
from ..ir import INPUT
from ..neuron import MultiLevelIF
from .arch import Arch, LayerSpec
from .lemaire import Activity, Flow

__all__ = ["ResidualAdd", "ArchNet", "record", "is_spiking", "torch_report"]


def _pool_kernel(m, in_hw=None):
    """``(op, k)`` of a torch 2-D pool that is a k×k window with stride k and no padding;
    raise :class:`MlsnnError` for any other pooling (adaptive pools need the input's
    ``in_hw``)."""
    def pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    what = type(m).__name__
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        h, w = in_hw
        oh, ow = pair(m.output_size)
        oh, ow = oh or h, ow or w
        if h % oh or w % ow or h // oh != w // ow:
            raise MlsnnError(f"record: {what}(output_size={m.output_size}) on a {h}x{w} input "
                             f"is not a k x k pool with stride k (the energy model and the IR "
                             f"support only those)")
        return ("max" if isinstance(m, nn.AdaptiveMaxPool2d) else "avg"), h // oh
    k, s, p = pair(m.kernel_size), pair(m.stride or m.kernel_size), pair(m.padding)
    extra = isinstance(m, nn.MaxPool2d) and pair(m.dilation) != (1, 1)
    if k[0] != k[1] or s != k or p != (0, 0) or m.ceil_mode or extra:
        raise MlsnnError(f"record: {what}(kernel_size={m.kernel_size}, stride={m.stride}, "
                         f"padding={m.padding}) is not supported: the energy model and the IR "
                         f"pool a square k x k window with stride k, no padding, no ceil_mode"
                         + (", no dilation" if extra else ""))
    return ("max" if isinstance(m, nn.MaxPool2d) else "avg"), k[0]


_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def is_spiking(module):
    """Default test for a module whose outputs are spikes."""
    return isinstance(module, MultiLevelIF) or hasattr(module, "v_threshold")


class ResidualAdd(nn.Module):
    """Element-wise add of two tensors, visible to :func:`record`.

    ``mode="sew"``: plain add of the spike tensors (SEW-ResNet); ``"barrier"``: add, then a
    spiking ``neuron`` (Sparse-ResNet's barrier neuron); ``"ann"``: add, then ReLU.
    """

    def __init__(self, mode="sew", neuron=None):
        super().__init__()
        if mode not in ("sew", "barrier", "ann"):
            raise ValueError(f"mode must be 'sew', 'barrier' or 'ann', not {mode!r}")
        if mode == "barrier" and neuron is None:
            raise ValueError("a barrier ResidualAdd needs a neuron")
        self.mode = mode
        self.neuron = neuron if mode == "barrier" else (nn.ReLU() if mode == "ann" else None)

    def forward(self, a, b):
        s = a + b
        return self.neuron(s) if self.neuron is not None else s


class ArchNet(nn.Module):
    """A torch model of an :class:`Arch` with random weights.

    SNN: input ``[B, *shape]`` presented at every timestep (direct encoding), tensors ``[T, B,
    ...]``, a :class:`MultiLevelIF` after every conv/dense (``levels`` of the layer, V_th =
    ``threshold``), the readout summed over time. ANN (``ann=True``): ReLU instead, T = 1.
    Pooling layers are max-pools (``pool="max"``) or average pools.
    """

    def __init__(self, arch, *, timesteps=1, ann=False, threshold=1.0, seed=0):
        super().__init__()
        self.arch, self.timesteps, self.ann = arch, 1 if ann else timesteps, ann
        gen = torch.Generator().manual_seed(seed)
        self.mods = nn.ModuleDict()

        def neuron(levels):
            return nn.ReLU() if ann else MultiLevelIF(levels=max(1, levels), threshold=threshold)

        for spec in arch.layers:
            if spec.kind == "conv":
                m = nn.Sequential(nn.Conv2d(spec.c_in, spec.c_out, spec.kernel, spec.stride,
                                            spec.padding))
            elif spec.kind == "dense":
                m = nn.Sequential(nn.Linear(spec.n_in, spec.n_out))
            elif spec.kind == "pool":
                m = (nn.MaxPool2d(spec.kernel, spec.stride) if spec.pool == "max"
                     else nn.AvgPool2d(spec.kernel, spec.stride))
            else:
                mode = "ann" if ann else spec.join
                m = ResidualAdd(mode, neuron(spec.levels) if mode == "barrier" else None)
            if spec.kind in ("conv", "dense"):
                with torch.no_grad():
                    for p in m.parameters():
                        if p.dim() > 1:
                            fan_in = p[0].numel()
                            p.copy_(torch.randn(p.shape, generator=gen) * math.sqrt(2 / fan_in))
                        else:
                            p.zero_()
                if not spec.readout:
                    m.append(neuron(spec.levels))
            self.mods[spec.name] = m

    def forward(self, x):
        T = self.timesteps
        acts = {INPUT: x.unsqueeze(0).expand(T, *x.shape)}
        for spec in self.arch.layers:
            m = self.mods[spec.name]
            srcs = [acts[s] for s in spec.inputs]
            if spec.kind == "join":
                acts[spec.name] = m(srcs[0], srcs[1])
                continue
            a = srcs[0]
            tb = a.reshape(T * a.shape[1], *a.shape[2:])
            if spec.kind == "dense":
                tb = tb.reshape(tb.shape[0], -1)
            if spec.kind == "pool":
                out = m(tb)
                acts[spec.name] = out.reshape(T, -1, *out.shape[1:])
                continue
            layer = m[0](tb)
            layer = layer.reshape(T, -1, *layer.shape[1:])
            acts[spec.name] = m[1](layer) if len(m) > 1 else layer
        return acts[self.arch.layers[-1].name].sum(0)


class _Rec:
    def __init__(self, kind, module, name):
        self.kind, self.module, self.name = kind, module, name
        self.in_shape = self.out_shape = None
        self.spikes = Flow()
        self.pixels = Flow()
        self.ev_out = 0.0
        self.levels = 0
        self.closed = False
        self.pool = None


def record(model, x, *, timesteps, images=None, spiking=is_spiking):
    """Run ``model(x)`` once with hooks; return ``(arch, activities)`` per inference.

    Parameters
    ----------
    model : torch.nn.Module
    x : torch.Tensor
        The model input; its first axis is the batch unless ``images`` says otherwise.
    timesteps : int
        T of the SNN (sets the per-timestep bias reads and sweeps; the recorded events already
        span every timestep).
    images : int or None
        Number of inferences in the run (default ``x.shape[0]``).
    spiking : callable
        ``spiking(module) -> bool``: does this module emit spikes?
    """
    if not isinstance(model, nn.Module):
        raise MlsnnError("record: model must be a torch.nn.Module")
    B = images or int(x.shape[0])
    recs, producers, keep = [], {}, []
    state = {"spiked": False, "join": None}
    names = {m: n for n, m in model.named_modules()}
    if isinstance(model, ArchNet):
        for spec in model.arch.layers:
            m = model.mods[spec.name]
            names[m[0] if spec.kind in ("conv", "dense") else m] = spec.name

    def producer_of(t):
        p = producers.get(t.data_ptr())
        if p is not None and p[0].shape == t.shape:
            return p[1]
        if not state["spiked"]:
            return ("pixel", 1, 1.0)
        return state.get("last", ("spike", 1, 1.0))

    def flow_of(t, prod):
        nz = float((t != 0).sum()) / B
        if prod[0] == "pixel":
            return Flow(nz, float(t.sum()) / B, nz), True
        z = float(t.sum()) / prod[2] / B
        return Flow(nz, z, nz * prod[1]), False

    def on_weighted(m, inp, out):
        t = inp[0]
        prod = producer_of(t)
        kind = "conv" if isinstance(m, nn.Conv2d) else "dense"
        r = _Rec(kind, m, names.get(m, f"layer{len(recs)}"))
        r.in_shape = tuple(t.shape[-3:]) if kind == "conv" else (m.in_features,)
        r.out_shape = tuple(out.shape[-3:]) if kind == "conv" else (m.out_features,)
        f, px = flow_of(t, prod)
        if px:
            r.pixels = f
        else:
            r.spikes = f
        recs.append(r)

    def on_spiking(m, inp, out):
        levels = int(getattr(m, "levels", 1))
        unit = float(getattr(m, "theta", 1.0))
        info = ("spike", levels, unit)
        producers[out.data_ptr()] = (out, info)
        keep.append(out)
        state["spiked"] = True
        state["last"] = info
        nz = float((out != 0).sum()) / B
        target = state["join"]
        if target is None:
            for r in reversed(recs):
                if r.kind in ("conv", "dense") and not r.closed:
                    target = r
                    break
        if target is not None and not target.closed:
            target.ev_out += nz
            target.levels = max(target.levels, levels)
            target.closed = True

    def on_pool(m, inp, out):
        t = inp[0]
        prod = producer_of(t)
        r = _Rec("pool", m, names.get(m, f"pool{len(recs)}"))
        if t.dim() < 3:
            raise MlsnnError(f"record: {type(m).__name__} '{r.name}' pools a "
                             f"{tuple(t.shape)} tensor; a pool needs (C, H, W) inputs")
        r.in_shape, r.out_shape = tuple(t.shape[-3:]), tuple(out.shape[-3:])
        r.pool = _pool_kernel(m, r.in_shape[1:])
        f, px = flow_of(t, prod)
        if px:
            r.pixels = f
        else:
            r.spikes = f
            r.levels = int(prod[1])
        r.ev_out = float((out != 0).sum()) / B
        r.closed = True
        recs.append(r)
        on_passthrough(m, inp, out)

    def on_passthrough(m, inp, out):
        if not isinstance(inp[0], torch.Tensor):
            return
        p = producers.get(inp[0].data_ptr())
        if p is not None:
            producers[out.data_ptr()] = (out, p[1])
            keep.append(out)

    def pre_join(m, inp):
        r = _Rec("join", m, names.get(m, f"join{len(recs)}"))
        t0 = inp[0]
        r.in_shape = r.out_shape = tuple(t0.shape[-3:]) if t0.dim() >= 4 else tuple(t0.shape[-1:])
        for t in inp:
            f, px = flow_of(t, producer_of(t))
            if px:
                r.pixels = r.pixels + f
            else:
                r.spikes = r.spikes + f
        recs.append(r)
        if m.mode == "barrier":
            state["join"] = r

    def post_join(m, inp, out):
        r = state["join"]
        state["join"] = None
        if m.mode == "sew":
            prod = [producer_of(t) for t in inp]
            info = ("spike", sum(p[1] for p in prod), prod[0][2])
            producers[out.data_ptr()] = (out, info)
            keep.append(out)
            rec = recs[-1]
            rec.ev_out = rec.spikes.events + rec.pixels.events
        elif r is not None:
            r.closed = True

    for m in model.modules():
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            _pool_kernel(m)                 # an unsupported pool fails before the run
    handles = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            handles.append(m.register_forward_hook(on_weighted))
        elif isinstance(m, ResidualAdd):
            handles.append(m.register_forward_pre_hook(pre_join))
            handles.append(m.register_forward_hook(post_join))
        elif spiking(m):
            handles.append(m.register_forward_hook(on_spiking))
        elif isinstance(m, _POOLS):
            handles.append(m.register_forward_hook(on_pool))
        elif isinstance(m, (nn.Flatten, nn.Identity, nn.Dropout)):
            handles.append(m.register_forward_hook(on_passthrough))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if not any(r.kind in ("conv", "dense") for r in recs):
        raise MlsnnError("record: the model ran no Conv2d or Linear module")
    last = max(i for i, r in enumerate(recs) if r.kind in ("conv", "dense"))
    layers, acts, seen = [], {}, {}
    for i, r in enumerate(recs):
        name = r.name or f"layer{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}#{seen[name]}"
        else:
            seen[name] = 0
        readout = i == last
        if r.kind == "join":
            mode = r.module.mode
            spec = LayerSpec(name=name, kind="join", in_shape=r.in_shape, out_shape=r.out_shape,
                             join="sew" if mode == "sew" else "barrier",
                             levels=r.levels if mode == "barrier" else 0)
            if mode == "ann":
                spec = LayerSpec(name=name, kind="join", in_shape=r.in_shape,
                                 out_shape=r.out_shape, join="sew", levels=0)
        elif r.kind == "pool":
            op, k = r.pool
            spec = LayerSpec(name=name, kind="pool", in_shape=r.in_shape, out_shape=r.out_shape,
                             kernel=k, stride=k, pool=op, levels=r.levels)
        elif r.kind == "conv":
            m = r.module
            spec = LayerSpec(name=name, kind="conv", in_shape=r.in_shape, out_shape=r.out_shape,
                             kernel=m.kernel_size[0], stride=m.stride[0], padding=m.padding[0],
                             levels=0 if readout else r.levels, readout=readout)
        else:
            spec = LayerSpec(name=name, kind="dense", in_shape=r.in_shape,
                             out_shape=r.out_shape, levels=0 if readout else r.levels,
                             readout=readout)
        layers.append(spec)
        acts[name] = Activity(spikes=r.spikes, pixels=r.pixels,
                              ev_out=0.0 if readout else r.ev_out)
    arch = Arch(input_shape=tuple(x.shape[1:]), layers=tuple(layers),
                name=type(model).__name__)
    return arch, acts


def torch_report(model, x, *, timesteps, ann=False, images=None, spiking=is_spiking, **kw):
    """:func:`golden.energy.report.arch_report` of a torch model with its recorded activity."""
    from .report import arch_report

    arch, acts = record(model, x, timesteps=timesteps, images=images, spiking=spiking)
    if ann:
        return arch_report(arch, ann_only=True, **kw)
    return arch_report(arch, timesteps=timesteps, activities=acts, source="torch hooks", **kw)
