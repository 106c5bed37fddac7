"""The hardware side of the layer-kind registry: which core builds each IR layer.

Every kind in :data:`golden.ir.KINDS` names its core as ``hw_core = "module:Class"``; this
module resolves it (importing the module on first use), so a new kind adds its core in its own
module and touches nothing here. Every core class offers the same factory and ports::

    Core.from_network(net, name, *, discharge="parallel", synapse="mul",   # options that do
                      early_exit=False)                                   # not apply: ignored
    core.inputs, core.in_layouts    # the input stream ports and their payload layouts, in the
                                    # IR's ``inputs`` order
    core.o, core.out_layout, core.clear, core.counters, core.overflow

``check(net, name)`` (a static method of the core class, optional) raises ``ValueError`` for a
layer the core cannot build; :func:`check_network` turns that into one :class:`MlsnnError`.
``EARLY_EXIT = True`` (a class attribute) says that the core takes part in the early exit of
docs/early-exit.md (``early_exit=True``: an ``exit`` input and an ``exiting`` output);
:func:`hw.network.check_supported` refuses an early-exit network with a core without it.
"""

from __future__ import annotations

import importlib

from golden.errors import MlsnnError
from golden.ir import KINDS, kind_of

__all__ = ["core_class", "layer_core", "check_network", "CoreFactory", "SingleInput"]


class SingleInput:
    """Mixin: the ``inputs``/``in_layouts`` of this module for a core with one input port ``i``
    of payload ``in_layout``."""

    @property
    def inputs(self):
        """The input ports in IR ``inputs`` order (one)."""
        return (self.i,)

    @property
    def in_layouts(self):
        return (self.in_layout,)


class CoreFactory:
    """Mixin: the uniform ``from_network`` and ``check`` of this module for a core built as
    ``Core(layer=, info=, timesteps=, **options)`` that validates the same arguments in a static
    ``_validate(**args)``. ``OPTIONS`` names the options of ``from_network`` the core takes
    (the others do not apply to it and are ignored: a pool has no synapses)."""

    OPTIONS = ()
    EARLY_EXIT = True

    @staticmethod
    def check(net, name):
        """Raise ``ValueError`` when the core cannot be built (a v0 outside its width)."""
        from .layer import check_v0
        check_v0(net.layer(name), net.info(name))

    @classmethod
    def from_network(cls, net, name, *, discharge="parallel", synapse="mul", early_exit=False):
        """The core of layer ``name`` of ``net`` (``early_exit``: with its exit ports)."""
        given = {"discharge": discharge, "synapse": synapse}
        args = dict(layer=net.layer(name), info=net.info(name), timesteps=net.timesteps,
                    **{k: given[k] for k in cls.OPTIONS})
        cls._validate(**args)       # before construction: a failed constructor leaves an
        return cls(**args, early_exit=early_exit)   # unused elaboratable behind (a warning)


def core_class(kind):
    """The core class of layer kind ``kind`` (a name in :data:`golden.ir.KINDS`)."""
    cls = KINDS.get(kind)
    if cls is None:
        raise MlsnnError(f"unknown layer kind '{kind}' (known: {', '.join(sorted(KINDS))})")
    if not cls.hw_core:
        raise MlsnnError(f"layer kind '{kind}' has no hardware core yet")
    module, _, name = cls.hw_core.partition(":")
    return getattr(importlib.import_module(module), name)


def layer_core(net, name, *, discharge="parallel", synapse="mul", early_exit=False):
    """The hardware core of IR layer ``name`` of ``net``."""
    layer = net.layer(name)
    return core_class(kind_of(layer).kind).from_network(net, name, discharge=discharge,
                                                        synapse=synapse, early_exit=early_exit)


def check_network(net):
    """Raise :class:`MlsnnError` for the first layer of ``net`` its core cannot build."""
    for layer in net.layers:
        check = getattr(core_class(kind_of(layer).kind), "check", None)
        if check is None:
            continue
        try:
            check(net, layer.name)
        except ValueError as e:
            raise MlsnnError(str(e)) from None
