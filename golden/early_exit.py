"""Offline fitting of the early-exit thresholds alpha_t (seed 004 §3.3, docs/early-exit.md).

Seed 004 states the problem as Eq. 17: maximise the expected accuracy a(x, y, α) subject to an
expected latency b(x, α) <= Γ, solved "through empirical approximation", and parametrises the
per-timestep thresholds by Eq. 18, α_t = α_base + β·exp(−(Ē_t − Ē_min)/δ), Ē_t the mean
entropy of the output at timestep t. mlsnn's confidence is the integer margin between the two
largest readout potentials (larger margin ~ lower entropy), so Eq. 18 is transposed to it:

    alpha_t = round(s_t · (α_base + β·exp(−(M̄_max − M̄_t) / (δ·M̄_max))))    t = 1 .. T−1

with M̄_t the training set's mean margin after timestep t, ``s_t = max(M̄_t, 1)`` (margins grow
with t because the readout accumulates: thresholds are set in units of each timestep's typical
margin), M̄_max = max_t M̄_t (the most confident timestep, Ē_min's counterpart) and δ = 1. Γ is
the average number of timesteps (``budget``). The empirical approximation is a grid search over
(α_base, β); among the candidates whose average timesteps on the data are <= Γ the one with the
highest accuracy wins, then the one that spends the most of the budget (where the accuracy on
the fitting data saturates, e.g. on images the network was trained on, the margin of safety
goes to unseen images: the least confident images keep computing), then the smallest α_base.
The grid also holds the fixed timestep counts T' = 1 .. T (alpha = max before T', 0 at T';
T' = 1 is alpha = 0 everywhere, average 1; T' = T no exit), so every budget in 1 .. T has a
solution and the fit is never worse on its data than a fixed T' within the budget. The best
candidate is then refined by coordinate descent over each alpha_t (values: the quantiles of the
margins at t, 0 and the largest), keeping a change while (accuracy, timesteps spent) improves
within the budget — Eq. 18 is the starting point, Eq. 17 the objective.

Everything is evaluated from one golden run without exit (the potentials after every timestep do
not depend on the exit), so a candidate costs a few numpy operations.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import MlsnnError
from .ir import MAX_ALPHA, Network
from .reference import exit_timesteps, margins, run

__all__ = ["fit_alpha", "evaluate", "alpha_family", "BASE_GRID", "BETA_GRID", "DELTA",
           "REFINE_SWEEPS", "REFINE_LEVELS"]

#: α_base values searched (in units of the timestep's mean margin).
BASE_GRID = tuple(float(v) for v in np.concatenate([[0.0], np.geomspace(0.02, 16.0, 96)]))
#: β values searched.
BETA_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)
#: δ of Eq. 18 (fixed: the grid over β already sets the weight of the exponential term).
DELTA = 1.0
#: Coordinate-descent refinement: sweeps over t, and margin quantiles tried per alpha_t.
REFINE_SWEEPS = 3
REFINE_LEVELS = 33


def _check_labels(x, y):
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise MlsnnError(f"labels must be a vector of {x.shape[0]} integers (one per image), "
                         f"not of shape {tuple(y.shape)}")
    if y.dtype.kind not in "iu":
        raise MlsnnError(f"labels must be integers, not {y.dtype}")
    return y.astype(np.int64)


def alpha_family(mean_margins, base, beta, delta=DELTA):
    """Eq. 18 transposed to margins (module docstring): the T − 1 integer thresholds for the
    mean margins ``M̄_1 .. M̄_{T-1}``."""
    mbar = np.asarray(mean_margins, dtype=np.float64)
    mmax = max(float(mbar.max(initial=0.0)), 1.0)
    out = []
    for m in mbar:
        a = max(m, 1.0) * (base + beta * math.exp(-(mmax - m) / (delta * mmax)))
        out.append(int(min(MAX_ALPHA, round(a))))
    return out


def fit_alpha(net, x, y, *, budget):
    """Fit alpha_t on images ``x`` with labels ``y`` under an average-timestep ``budget`` Γ.

    Returns
    -------
    (alpha, info)
        ``alpha`` a list of T − 1 ints; ``info`` a dict: ``accuracy``, ``avg_timesteps`` (on
        ``x``), ``alpha_base``, ``beta``, ``delta`` (of the Eq. 18 starting point; base None
        for a fixed T'), ``refined`` (the coordinate descent changed it), ``mean_margins``.

    Raises
    ------
    MlsnnError
        A budget outside 1 .. T, labels of the wrong shape, T = 1.
    """
    if not isinstance(net, Network):
        raise MlsnnError("fit_alpha: net must be a golden.ir.Network")
    T = net.timesteps
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or \
            not 1 <= budget <= T:
        raise MlsnnError(f"budget must be a number in 1 .. T = {T}, not {budget!r}")
    if T < 2:
        raise MlsnnError("early exit needs T >= 2 timesteps (with T = 1 there is nothing to "
                         "skip)")
    x = net.check_inputs(x)
    y = _check_labels(x, y)
    full = run(net.replace(early_exit=None), x, record_events=False)
    steps = full.readout_steps                              # [T, B, C]
    correct = np.argmax(steps, axis=-1) == y[None, :]       # [T, B], lowest index on ties
    mbar = margins(steps)[:T - 1].mean(axis=1)
    B = x.shape[0]
    m = margins(steps)

    def score(alpha):
        used = exit_timesteps(steps, alpha)
        if float(used.mean()) > budget:
            return None, used
        return (int(correct[used - 1, np.arange(B)].sum()), int(used.sum())), used

    # Eq. 18's family, plus alpha = 0 (average 1) and the fixed T' = 1 .. T (no exit before
    # T', all exit at T'), so that the fit is never worse on x than a fixed timestep count.
    cands = [(math.inf, 0.0, [MAX_ALPHA] * (T - 1))]
    cands += [(0.0, 0.0, [MAX_ALPHA] * (k - 1) + [0] * (T - k)) for k in range(1, T)]
    cands += [(b, be, alpha_family(mbar, b, be)) for be in BETA_GRID for b in BASE_GRID]
    best = None
    for base, beta, alpha in cands:
        key, used = score(alpha)
        if key is not None and (best is None or (key, -base) > best[0]):
            best = ((key, -base), base, beta, list(alpha))
    (key, _), base, beta, alpha = best
    # Refinement (the empirical approximation of Eq. 17): coordinate descent over each
    # alpha_t on the quantiles of the margins at t, while the key improves.
    refined = False
    for _ in range(REFINE_SWEEPS):
        better = False
        for t in range(T - 1):
            vals = np.unique(np.quantile(m[t], np.linspace(0, 1, REFINE_LEVELS)).round())
            for v in [0, *(int(v) + d for v in vals for d in (0, 1)), MAX_ALPHA]:
                trial = alpha[:t] + [int(min(max(v, 0), MAX_ALPHA))] + alpha[t + 1:]
                k2, _ = score(trial)
                if k2 is not None and k2 > key:
                    key, alpha, better, refined = k2, trial, True, True
        if not better:
            break
    _, used = score(alpha)
    acc = float((np.argmax(steps, axis=-1)[used - 1, np.arange(B)] == y).mean())
    return list(alpha), {"accuracy": acc, "avg_timesteps": float(used.mean()),
                         "alpha_base": base if math.isfinite(base) else None, "beta": beta,
                         "delta": DELTA, "refined": refined,
                         "mean_margins": [float(v) for v in mbar]}


def evaluate(net, x, y, result=None):
    """Accuracy, average timesteps and the timestep histogram of ``net`` (its early exit, if
    any) on ``x`` with labels ``y``; ``result`` a golden run already at hand."""
    x = net.check_inputs(x)
    y = _check_labels(x, y)
    res = result if result is not None else run(net, x, record_events=False)
    T = net.timesteps
    return {"accuracy": float((res.predictions == y).mean()),
            "avg_timesteps": float(res.timesteps.mean()),
            "timesteps_histogram": [int((res.timesteps == t).sum()) for t in range(1, T + 1)]}
