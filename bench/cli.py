"""``snnbench`` command line.

Subcommands live in ``bench/commands/<name>.py``; each module defines
``register(subparsers, parent)`` and its handlers return a dict, which the CLI prints as
exactly one JSON object with ``--json`` or as a short human summary otherwise.

Errors: any exception with an ``exit_code`` attribute (bench, driver and config errors)
becomes a one-line message on stderr and that exit code (2 usage/config/input, 1 runtime);
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import pkgutil
import signal
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import bench


SILENT: dict = {}
"""A handler returns this (the object itself) when it printed its own output (``sim serve``)."""


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C so every context manager closes its instruments and files."""


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise Terminated()


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors exit 2 with one line (argparse's own convention).

    ``defer(fill)``: ``fill(parser)`` adds this parser's arguments only when the parser is
    used (its command is given, or its help or usage is printed), so a command whose
    arguments come from a heavy module (``sim serve``: the simulator) costs nothing to
    register."""

    def defer(self, fill: Any) -> None:
        self.__dict__.setdefault("_deferred", []).append(fill)

    def _fill(self) -> None:
        pending = self.__dict__.get("_deferred", [])
        while pending:
            pending.pop(0)(self)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self._fill()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._fill()
        return super().format_help()

    def format_usage(self) -> str:
        self._fill()
        return super().format_usage()

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"snnbench: error: {message}\n")


def _nonfinite(v: Any) -> bool:
    return isinstance(v, (float, np.floating)) and not math.isfinite(float(v))


def _jsonable(obj: Any) -> Any:
    """Make ``obj`` strict JSON: numpy to Python, paths to text, and every non-finite float
    (NaN, +-inf: not JSON) to ``null`` with a sibling ``"<key>_reason"`` saying why, unless
    the producer gave one already.  Never raises on a result a command returned."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            key = str(k)
            if _nonfinite(v):
                out[key] = None
                reason = obj.get(f"{key}_reason")
                out[f"{key}_reason"] = (reason if isinstance(reason, str) else
                                        f"not a finite number ({float(v)!r}): undefined for this run")
            elif key not in out:
                out[key] = _jsonable(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        obj = obj.item()
    if _nonfinite(obj):   # inside a list: no key to hang a reason on
        return None
    if hasattr(obj, "__fspath__"):
        return str(obj)
    return obj


def _human(result: dict[str, Any]) -> str:
    if "summary" in result and isinstance(result["summary"], str):
        return result["summary"]
    width = max((len(k) for k in result), default=0)
    lines = []
    for k, v in result.items():
        if isinstance(v, float):
            v = f"{v:.6g}"
        elif isinstance(v, (dict, list)):
            v = json.dumps(_jsonable(v))
        lines.append(f"{k:<{width}}  {v}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    def options(default: Any) -> argparse.ArgumentParser:
        # Subparsers get SUPPRESS defaults so a flag given before the command survives.
        p = argparse.ArgumentParser(add_help=False)
        p.add_argument("--json", action="store_true", default=default(False),
                       help="print exactly one JSON object on stdout")
        p.add_argument("--debug", action="store_true", default=default(False), help="show tracebacks")
        p.add_argument("--station", metavar="FILE", default=default(None),
                       help="station TOML (default: the built-in simulated bench)")
        return p

    common = options(lambda _v: argparse.SUPPRESS)
    parser = _Parser(prog="snnbench", parents=[options(lambda v: v)],
                     description="Test-bench controller for the memristive SNN chip (128x24 RRAM PE "
                                 "macro) and its simulated twin. Quick start: snnbench demo.")
    parser.add_argument("--version", action="store_true",
                        help="print the version and the compiled-kernel path in use, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    import bench.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"bench.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(sub, common)
    return parser


def version_report() -> dict[str, Any]:
    """``snnbench --version``: the package version and which compiled-kernel path runs the
    simulated chip and the software network (numba, or the numpy reference and why), and which
    CRC-32 implementation checks the link's frames (zlib-ng, or the standard zlib fallback)."""
    from firmware_iface import crc
    from sim_backend.physics import jit   # the public switch (decision 0015); imports numba

    kernel = jit.report()
    how = (f"numba {kernel['numba']}" if kernel["path"] == "numba"
           else f"numpy reference ({kernel['reason']})")
    return {"version": bench.__version__, "kernel": kernel, "crc32": crc.IMPLEMENTATION,
            "summary": f"snnbench {bench.__version__}\nkernel: {how}\nlink CRC-32: {crc.IMPLEMENTATION}"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit code 1 (and the rails named last on stderr) whenever an SMU
    output could not be confirmed off, whatever the command's own outcome."""
    # Only a command that drove an SMU has imported the guard (drivers.instruments, which
    # imports every SMU driver): a usage error or --help does not pay for it.
    safety = sys.modules.get("drivers.instruments.safety")
    if safety is not None:
        safety.clear_unconfirmed()
    code = _main(argv)
    safety = sys.modules.get("drivers.instruments.safety")
    lines = safety.unconfirmed() if safety is not None else []
    for line in lines:
        print(line, file=sys.stderr)
    sys.stderr.flush()
    return 1 if lines and code in (0, 2) else code


def _main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if threading_main():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "version", False) and not getattr(args, "func", None):
            result = version_report()
        elif not getattr(args, "func", None):
            print("snnbench: error: no command given (see 'snnbench --help')", file=sys.stderr)
            return 2
        else:
            result = args.func(args)
    except (KeyboardInterrupt, Terminated) as exc:
        # SIGTERM is 143 (128 + 15) whoever's handler turned it into an exception: the CLI's
        # own (Terminated) or the SMU safety guard's (safety.Terminated, a KeyboardInterrupt)
        from drivers.instruments.safety import Terminated as GuardTerminated

        if isinstance(exc, (Terminated, GuardTerminated)):
            print("snnbench: terminated", file=sys.stderr)
            return 143
        print("snnbench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI boundary turns every error into one line
        code = getattr(exc, "exit_code", None)
        if debug or code is None and not isinstance(exc, (OSError, ValueError)):
            raise
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"snnbench: error: {msg}", file=sys.stderr)
        for line in getattr(exc, "details", ()):  # e.g. every problem of a campaign plan
            print(f"snnbench: error: {' '.join(str(line).split())}", file=sys.stderr)
        return int(code) if code is not None else (2 if isinstance(exc, ValueError) else 1)
    if result is SILENT:
        return 0
    if result is None:
        result = {}
    try:
        if getattr(args, "json", False):
            print(json.dumps(_jsonable(result), allow_nan=False))
        else:
            print(_human(result))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return int(result.get("exit_code", 0)) if isinstance(result, dict) else 0


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
