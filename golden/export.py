"""Float model → integer IR (SPEC §6): BN folding and per-layer integer scaling.

A float layer sees input events whose float value is ``z · s_in`` (``s_in`` = the input scale
for pixels, θ = V_th/N of the layer that emitted them) and computes, per timestep,
``I = Σ z_i s_in w_ij + b_j``; it fires ``z = min(N, ⌊H/θ⌋)``. Multiplying every term by one
positive per-layer factor Q changes nothing but the unit of the potential, so the integer layer
uses ``w_int = round(s_in·w·Q)``, ``b_int = round(b·Q)``, ``θ_int = θ·Q``, ``v0_int = round(v0·Q)``;
the neuron's ``reset`` (soft or hard, docs/reset.md) and ``leak`` (docs/leak.md: k is a shift,
independent of Q) are carried over unchanged.
Q is chosen so that θ·Q is an integer and the largest |s_in·w·Q| fits in W_BITS
(``Q = θ_int / θ`` with ``θ_int = ⌊θ · (2^(W_BITS−1) − 1) / max|s_in·w|⌋``): the threshold is exact
and only the weights and biases are rounded. The readout's Q only scales the logits (argmax is
unchanged). Barrier joins get small integer stream weights and threshold from the ratio of their
input scales to their own θ (exactly (1, 1) and θ = 1 when all scales are equal).

Pools (:mod:`golden.pooling`) have no weights. A max pool passes the largest level of its window
on, so its events keep the scale of its input (θ_in). An average pool adds the window's levels
z into its potential, one integer unit per level; in float units one level is θ_in/k² after the
float model's ``avg_pool2d``, so Q = k²/θ_in and ``θ_int = round(k²·θ/θ_in)`` (k² when θ = θ_in,
the usual case: exact), ``v0_int = round(v0·Q)``; a θ that is no multiple of θ_in/k² is rounded
and reported.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import ir
from .errors import MlsnnError
from .pooling import AvgPool2d, MaxPool2d

__all__ = ["fold_batchnorm", "export", "ExportReport", "layer_scale", "quantize_layer"]


def fold_batchnorm(weight, bias, bn):
    """Fold an eval-mode ``torch.nn.BatchNorm1d/2d`` that follows a linear or conv layer.

    Returns ``(weight', bias')`` (float tensors) with ``bn(W x + b) == W' x + b'``.
    """
    if not isinstance(bn, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
        raise MlsnnError(f"fold_batchnorm: expected a BatchNorm1d/2d, not {type(bn).__name__}")
    gamma = bn.weight.detach() if bn.affine else torch.ones_like(bn.running_mean)
    beta = bn.bias.detach() if bn.affine else torch.zeros_like(bn.running_mean)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    w = weight.detach() * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    b = bias.detach() if bias is not None else torch.zeros_like(bn.running_mean)
    return w, (b - bn.running_mean) * scale + beta


def _small_ratio(values, limit=1 << 12):
    """Smallest power-of-two multiple Q of ``1/min(values)`` that makes every ``v·Q`` an
    integer (within 1e-9), up to ``limit``; else the best rounding at ``limit``."""
    base = 1.0 / min(values)
    q = base
    while q * min(values) <= limit:
        if all(abs(v * q - round(v * q)) < 1e-9 for v in values):
            return q
        q *= 2
    return q / 2


def layer_scale(amax, theta, w_bits):
    """The per-layer factor Q of the module docstring, from the largest ``|s_in·w|``.

    Parameters
    ----------
    amax : float
        ``max|s_in·w|`` of the layer (0 is read as 1: a layer without weights).
    theta : float or None
        The float threshold, or ``None`` for the readout (then Q only scales the logits).
    w_bits : int
        Signed weight width.

    Returns
    -------
    q : float
        ``θ_int / θ`` (readout: ``(2^(W_BITS−1) − 1) / amax``).
    threshold : int
        ``θ_int = max(1, ⌊θ · (2^(W_BITS−1) − 1) / amax⌋)`` (exactly ``θ·Q``); 1 for the
        readout.
    """
    wmax = (1 << (w_bits - 1)) - 1
    if amax == 0.0:
        amax = 1.0
    if theta is None:
        return wmax / amax, 1
    th = int(math.floor(theta * wmax / amax))
    th = max(th, 1)         # below 1 the weights clip: reported by quantize_layer
    return th / theta, th


def quantize_layer(w, bias, q, w_bits):
    """Integer weights and biases of a layer scaled by Q: ``round(w·Q)`` clipped to W_BITS,
    ``round(b·Q)``.

    Parameters
    ----------
    w : torch.Tensor
        ``s_in·w`` (float64), any layout.
    bias : torch.Tensor
        Float64 biases.
    q : float
        The layer's factor (:func:`layer_scale`).
    w_bits : int

    Returns
    -------
    wq, bq : torch.Tensor
        Integer-valued float64 tensors, the shapes of ``w`` and ``bias``.
    clipped : int
        Weights beyond ``±(2^(W_BITS−1) − 1)``, clipped.
    max_weight_error : float
        ``max|clip(w·Q) − wq| / Q`` in float units.
    b_bits : int
        Width of the biases (at least 16).
    """
    wmax = (1 << (w_bits - 1)) - 1
    wq = torch.round(w * q)
    clipped = int((wq.abs() > wmax).sum())
    wq = wq.clamp(-wmax, wmax)
    bq = torch.round(bias * q)
    b_bits = max(16, ir.signed_width(int(bq.abs().max()) if bq.numel() else 0))
    err = float(((w * q).clamp(-wmax, wmax) - wq).abs().max() / q) if w.numel() else 0.0
    return wq, bq, clipped, err, b_bits


class ExportReport(dict):
    """Per-layer facts of an export, by layer name.

    dense/conv2d ``{"q", "threshold", "clipped", "max_weight_error"}``; barrier join ``{"mode",
    "q", "threshold", "stream_weights"}``; SEW join ``{"mode"}``; max pool ``{"kind",
    "kernel"}``; average pool ``{"kind", "kernel", "q", "threshold", "threshold_error"}``
    (``threshold_error`` = |θ_int/Q − θ|, 0.0 when the threshold is exact).
    """


def _leakless(model, name, what):
    """The neuron of layer ``name``, which must have no leak: the IR gives ``what`` (a barrier
    join, an average pool) no leak field (docs/leak.md)."""
    neuron = model.neurons[name]
    if getattr(neuron, "leak", 0):
        raise MlsnnError(f"layer '{name}': {what} has no leak in the IR, but its neuron has "
                         f"leak {neuron.leak}; give it leak 0")
    return neuron


def export(model, *, w_bits=8, name=None):
    """Convert a trained :class:`golden.train.SpikingNet` to a :class:`golden.ir.Network`.

    Parameters
    ----------
    model : golden.train.SpikingNet
    w_bits : int
        Signed weight width of every layer (2..16).

    Returns
    -------
    net : golden.ir.Network
    report : ExportReport
        ``{layer: {"q": Q, "threshold": θ_int, "clipped": n, "max_weight_error": e}}`` (other
        entries for joins and pools: :class:`ExportReport`).
    """
    if isinstance(w_bits, bool) or not isinstance(w_bits, int) or not 2 <= w_bits <= 16:
        raise MlsnnError(f"w_bits must be an integer in 2..16, not {w_bits!r}")
    for pname, value in model.state_dict().items():
        if value.is_floating_point() and not bool(value.isfinite().all()):
            raise MlsnnError(f"the model's '{pname}' holds non-finite values (NaN or inf): "
                             f"the training diverged or the checkpoint is damaged")
    cfg = model.config
    scale = {"input": float(cfg.input_scale)}
    layers, report = [], ExportReport()
    for spec in model.layers:
        if spec.kind == "join":
            a, b = (scale[s] for s in spec.inputs)
            if spec.mode == "sew":
                if not math.isclose(a, b, rel_tol=1e-9):
                    raise MlsnnError(f"layer '{spec.name}': a SEW join needs inputs of the same "
                                     f"scale, got {a:g} and {b:g}")
                layers.append(ir.Join(name=spec.name, inputs=spec.inputs, mode="sew", scale=a))
                scale[spec.name] = a
                report[spec.name] = {"mode": "sew"}
                continue
            neuron = _leakless(model, spec.name, "a barrier join")
            theta = neuron.theta
            q = _small_ratio([a, b, theta])
            sw = (int(round(a * q)), int(round(b * q)))
            th = max(1, int(round(theta * q)))
            layers.append(ir.Join(name=spec.name, inputs=spec.inputs, mode="barrier",
                                  threshold=th, levels=neuron.levels,
                                  v0=int(round(neuron.v0 * q)), stream_weights=sw,
                                  scale=theta))
            scale[spec.name] = theta
            report[spec.name] = {"mode": "barrier", "q": q, "threshold": th,
                                 "stream_weights": list(sw)}
            continue
        if spec.kind == "maxpool2d":
            layers.append(MaxPool2d(name=spec.name, inputs=spec.inputs, kernel=spec.kernel))
            scale[spec.name] = scale[spec.inputs[0]]
            report[spec.name] = {"kind": "maxpool2d", "kernel": spec.kernel}
            continue
        if spec.kind == "avgpool2d":
            neuron = _leakless(model, spec.name, "an average pool")
            theta = neuron.theta
            q = spec.kernel * spec.kernel / scale[spec.inputs[0]]
            th = max(1, int(round(theta * q)))
            layers.append(AvgPool2d(name=spec.name, inputs=spec.inputs, kernel=spec.kernel,
                                    threshold=th, levels=neuron.levels,
                                    v0=int(round(neuron.v0 * q)), scale=theta))
            scale[spec.name] = theta
            report[spec.name] = {"kind": "avgpool2d", "kernel": spec.kernel, "q": q,
                                 "threshold": th, "threshold_error": abs(th / q - theta)}
            continue
        syn = model.synapses[spec.name]
        s_in = scale[spec.inputs[0]]
        w = syn.weight.detach().to(torch.float64) * s_in
        bias = syn.bias.detach().to(torch.float64) if syn.bias is not None \
            else torch.zeros(w.shape[0], dtype=torch.float64)
        amax = float(w.abs().max())
        if spec.readout:
            q, th = layer_scale(amax, None, w_bits)
            levels, v0, out_scale, reset, leak = 1, 0, 1.0, "soft", 0
        else:
            neuron = model.neurons[spec.name]
            q, th = layer_scale(amax, neuron.theta, w_bits)
            levels, out_scale = neuron.levels, neuron.theta
            v0 = int(round(neuron.v0 * q))
            reset = getattr(neuron, "reset", "soft")
            leak = getattr(neuron, "leak", 0)
        wq, bq, clipped, werr, b_bits = quantize_layer(w, bias, q, w_bits)
        if spec.kind == "dense":
            weight = wq.t().contiguous().numpy().astype(np.int64)        # [N_in, N_out]
            layer = ir.Dense(name=spec.name, inputs=spec.inputs, threshold=th, levels=levels,
                             weight=weight, bias=bq.numpy().astype(np.int64), v0=v0,
                             w_bits=w_bits, b_bits=b_bits, readout=spec.readout,
                             scale=out_scale, reset=reset, leak=leak)
        else:
            weight = wq.permute(1, 2, 3, 0).contiguous().numpy().astype(np.int64)
            layer = ir.Conv2d(name=spec.name, inputs=spec.inputs, threshold=th, levels=levels,
                              weight=weight, bias=bq.numpy().astype(np.int64), v0=v0,
                              w_bits=w_bits, b_bits=b_bits, readout=spec.readout,
                              scale=out_scale, stride=syn.stride[0], padding=syn.padding[0],
                              reset=reset, leak=leak)
        layers.append(layer)
        scale[spec.name] = out_scale
        report[spec.name] = {"q": q, "threshold": th, "clipped": clipped,
                             "max_weight_error": werr}
    net = ir.Network(input=ir.InputSpec(shape=tuple(cfg.input_shape), in_bits=cfg.in_bits,
                                        scale=cfg.input_scale),
                     timesteps=cfg.timesteps, layers=tuple(layers),
                     name=name or f"{cfg.arch}-T{cfg.timesteps}-N{cfg.levels}")
    return net, report
