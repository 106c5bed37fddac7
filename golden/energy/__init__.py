"""Energy models (ENERGY.md): Lemaire et al.'s analytic model, Dampfhoffer's baselines, and the
analytic / exact (golden) / measured (RTL) access reports.

Submodules
----------
:mod:`.tech`         the technology table (one place for every constant; TOML/JSON overrides)
:mod:`.arch`         layer-shape descriptions: VGG16, ResNet18, from an IR or a JSON file
:mod:`.lemaire`      the Lemaire model: counts per layer and per term, priced in pJ
:mod:`.compare`      analytic vs exact vs measured counts, with the causes of every difference
:mod:`.dampfhoffer`  naive / reuse / sparsity / Eyeriss ANN baselines and break-even spikes
:mod:`.torchfront`   torch models: activity recorded by forward hooks (imports torch lazily)
"""

from .arch import Arch, LayerSpec, from_ir, named, resnet18, vgg16
from .compare import ir_report, load_measured
from .dampfhoffer import breakeven
from .lemaire import (COUNTERS, OPS, TERMS, Activity, Flow, activity_from_rates, ann_ops,
                      energy, estimate, snn_counts)
from .tech import DEFAULT, Tech, load_tech

__all__ = [
    "Arch", "LayerSpec", "from_ir", "named", "resnet18", "vgg16",
    "ir_report", "load_measured", "breakeven",
    "COUNTERS", "OPS", "TERMS", "Activity", "Flow", "activity_from_rates", "ann_ops", "energy",
    "estimate", "snn_counts",
    "DEFAULT", "Tech", "load_tech", "arch_report",
]


def arch_report(*args, **kwargs):
    """See :func:`golden.energy.report.arch_report`."""
    from .report import arch_report as _f
    return _f(*args, **kwargs)
