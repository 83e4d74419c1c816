"""Where the default station keeps its die: the per-user die home and the current die.

The built-in simulated bench (no ``--station``) talks to one persistent simulated chip, the
*current die*, so ``chip program`` then ``chip read`` in separate commands meet the same
chip, as on silicon.  Its home is ``$SNNBENCH_DIE_HOME`` if set, else the per-user cache
directory (``$XDG_CACHE_HOME/snnbench/dies`` or ``~/.cache/snnbench/dies``; ``%LOCALAPPDATA%``
on Windows, ``~/Library/Caches`` on macOS).  The current die is ``default.h5`` there unless
``snnbench sim die use FILE`` named another (recorded in the file ``current`` there).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_HOME = "SNNBENCH_DIE_HOME"
DEFAULT_NAME = "default.h5"
_POINTER = "current"


def die_home() -> Path:
    """The directory holding the default die and the pointer to the current die."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "snnbench" / "dies"


def current_die() -> Path:
    """The die file the default station uses now (it may not exist yet)."""
    home = die_home()
    pointer = home / _POINTER
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return Path(text) if text else home / DEFAULT_NAME


def use_die(path: str | os.PathLike | None) -> Path:
    """Make ``path`` the current die (``None``: back to the home's ``default.h5``)."""
    home = die_home()
    home.mkdir(parents=True, exist_ok=True)
    pointer = home / _POINTER
    if path is None:
        pointer.unlink(missing_ok=True)
        return home / DEFAULT_NAME
    target = Path(path).expanduser().resolve()
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(str(target) + "\n", encoding="utf-8")
    os.replace(tmp, pointer)
    return target


def prepare_current_die() -> Path:
    """The current die's path, with its directory created (the simulator makes the file)."""
    path = current_die()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
