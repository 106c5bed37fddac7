"""The `mlsnn` command line.

Every sub-command lives in its own module under :mod:`flows.commands` and defines::

    NAME = "golden"                 # the sub-command
    HELP = "one line for --help"
    def add_arguments(parser): ...  # argparse arguments
    def run(args) -> int: ...       # exit status

Modules are discovered automatically, so adding a command never touches this file. User errors
(:class:`golden.MlsnnError`, missing files, malformed files) end with one line on stderr and a
non-zero exit, never a traceback.
"""

import argparse
import importlib
import json
import os
import pkgutil
import sys
import zipfile

from golden.errors import MlsnnError

import flows.commands as _commands


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (exit status 2)."""

    def error(self, message):
        self.exit(2, f"mlsnn: error: {message} (see '{self.prog} --help')\n")


class _Broken:
    """Stands in for a command module that failed to import; running it says why."""

    def __init__(self, name, error):
        self.NAME = name.replace("_cmd", "").replace("_", "-")
        self.HELP = f"(unavailable: {error})"
        self._error = error

    def run(self, args):
        raise MlsnnError(f"command '{self.NAME}' is unavailable: {self._error}")


def _discover():
    mods = []
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"flows.commands.{info.name}")
        except ImportError as e:
            # A command whose dependencies are missing must not take the others down with it.
            mods.append(_Broken(info.name, e))
            continue
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return mods


def build_parser():
    parser = _Parser(
        prog="mlsnn",
        description="mlsnn: hardware generator for event-driven multi-level spiking neural "
                    "networks. Every command takes --help.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _discover():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION",
                                                                      mod.HELP))
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        rc = args._run(args)
    except MlsnnError as e:
        print(f"mlsnn {args.command}: error: {e}", file=sys.stderr)
        return 1
    except FileNotFoundError as e:
        print(f"mlsnn {args.command}: error: file not found: {e.filename or e}", file=sys.stderr)
        return 1
    except IsADirectoryError as e:
        print(f"mlsnn {args.command}: error: is a directory, not a file: {e.filename}",
              file=sys.stderr)
        return 1
    except PermissionError as e:
        print(f"mlsnn {args.command}: error: permission denied: {e.filename}", file=sys.stderr)
        return 1
    except json.JSONDecodeError as e:
        print(f"mlsnn {args.command}: error: malformed JSON: {e}", file=sys.stderr)
        return 1
    except (zipfile.BadZipFile, EOFError) as e:
        print(f"mlsnn {args.command}: error: malformed .npz file: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        # Any other system error on a file (a full disk, a path through a file, ...).
        where = f": {e.filename}" if e.filename else ""
        print(f"mlsnn {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mlsnn {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0 if rc is None else int(rc)


if __name__ == "__main__":
    sys.exit(main())
