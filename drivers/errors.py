"""Exceptions raised by hardware drivers.  Every one carries an ``exit_code`` for the CLI."""
from __future__ import annotations


class DriverError(Exception):
    """Base of driver errors (runtime, exit code 1)."""

    exit_code = 1


class LinkError(DriverError):
    """The transport could not be opened or failed (unknown URL scheme, port unreachable)."""


class BadURLError(LinkError):
    """The link URL is not usable (unknown scheme, bad option): a usage error."""

    exit_code = 2


class ProtocolError(DriverError):
    """Bytes on the link do not form the expected reply (after retries were exhausted)."""


class ChipTimeout(DriverError):
    """The board did not answer in time (after retries were exhausted)."""


class ChipError(DriverError):
    """The board answered with an error status code."""

    def __init__(self, status: int, name: str, message: str = "") -> None:
        self.status = status
        self.status_name = name
        super().__init__(f"board reported {name} (status {status})" + (f": {message}" if message else ""))


class InstrumentError(DriverError):
    """A lab instrument is unreachable, is the wrong model, or reported an error."""


class LimitError(DriverError):
    """A value would exceed the station's safety limits; nothing was sent."""

    exit_code = 2
