"""snnbench: the bench that the lab engineer and the measurement campaign see."""
from __future__ import annotations


def __getattr__(name: str) -> str:
    """``bench.__version__``, looked up on first use: ``importlib.metadata`` costs ~30-50 ms of
    CPU per process, which ``snnbench --help`` and every usage error need not pay."""
    if name != "__version__":
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("snnbench")
    except PackageNotFoundError:  # running from a source tree without installation
        found = "0.1.0"
    globals()["__version__"] = found
    return found
