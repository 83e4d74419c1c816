"""Open the chip's serial link from any pyserial URL, with errors a person can act on."""
from __future__ import annotations

import serial

from drivers.errors import BadURLError, LinkError


def open_link(url: str, timeout_s: float = 0.05, baudrate: int = 3_000_000) -> serial.SerialBase:
    """Open ``url`` (``/dev/ttyUSB0``, ``socket://host:port``, ``rfc2217://...``, ``pesim://...``).

    ``timeout_s`` is the *poll* timeout of one read; the driver keeps its own deadline.
    """
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout_s, write_timeout=5.0)
    except ValueError as exc:
        if "not known" in str(exc):
            raise BadURLError(f"cannot open chip link {url!r}: unknown URL scheme ({exc})") from None
        raise BadURLError(f"cannot open chip link {url!r}: {exc}") from None
    except (serial.SerialException, OSError) as exc:
        if "unknown option" in str(exc) or "bad option" in str(exc) or "expected a" in str(exc):
            raise BadURLError(f"cannot open chip link {url!r}: {' '.join(str(exc).split())}") from None
        raise LinkError(f"cannot open chip link {url!r}: {' '.join(str(exc).split())}") from None
