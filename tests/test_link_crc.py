"""The link's CRC-32 (firmware_iface/crc.py): zlib-ng when installed, the standard zlib
otherwise -- the same function either way, and ``snnbench --version --json`` says which."""
from __future__ import annotations

import json
import subprocess
import sys

from firmware_iface import crc
from firmware_iface.framing import Frame, encode_frame

CHECK = 0xCBF43926
"""CRC-32/ISO-HDLC check value: the CRC of the ASCII bytes "123456789" (the catalogue of
parametrised CRC algorithms; also RFC 1952's CRC)."""

_BLOCKED = "import sys; sys.modules['zlib_ng'] = None; "  # `import zlib_ng` now raises ImportError


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_crc32_is_the_ieee_crc_and_continues_like_zlib():
    """Protects crc.crc32: the check value, and the running-CRC argument (a raw block's CRC
    computed in pieces equals the CRC of the whole)."""
    assert crc.crc32(b"123456789") == CHECK
    assert crc.crc32(b"56789", crc.crc32(b"1234")) == CHECK
    assert crc.crc32(memoryview(bytearray(b"123456789"))) == CHECK


def test_fallback_to_zlib_when_zlib_ng_is_missing():
    """kills crc: the fallback branch (no zlib-ng) reporting "zlib-ng" or a CRC other than
    the IEEE one; the frame bytes do not depend on which implementation is in use."""
    frame = Frame(0x20, 7, b"\x00\x01payload\xff" * 50, session=0x12345678)
    out = _run(_BLOCKED + "from firmware_iface import crc; from firmware_iface.framing import Frame, encode_frame; "
               f"print(crc.IMPLEMENTATION, crc.crc32(b'123456789'), encode_frame({frame!r}).hex())").split()
    assert out[0] == "zlib" and int(out[1]) == CHECK
    assert bytes.fromhex(out[2]) == encode_frame(frame)


def test_version_json_names_the_crc_implementation():
    """kills bench.cli.version_report: the ``crc32`` entry missing or not following what is
    installed (zlib-ng here when the package imports, zlib when it is blocked)."""
    try:
        import zlib_ng  # noqa: F401
        installed = "zlib-ng"
    except ImportError:  # pragma: no cover - zlib-ng is a dependency
        installed = "zlib"
    run = "from bench.cli import main; sys.exit(main(['--version', '--json']))"
    assert json.loads(_run("import sys; " + run))["crc32"] == installed
    assert json.loads(_run(_BLOCKED + run))["crc32"] == "zlib"
