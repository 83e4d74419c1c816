"""snnbench: the bench that the lab engineer and the measurement campaign see."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("snnbench")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"
