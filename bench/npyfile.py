"""Read one ``.npy`` array safely: the header is checked before a byte of data is loaded.

A ``.npy`` header declares dtype and shape; ``numpy.load`` trusts it and allocates what it
declares.  Here the declared size is checked first (``numpy.lib.format.read_magic`` and
``read_array_header_1_0/2_0``): against a caller's element limit and against the bytes the
file really holds, so a 192-byte file claiming (100000, 100000) is an input error, not a
MemoryError.  Pickled (object) arrays are refused; nothing is ever unpickled.
"""
from __future__ import annotations

import math
import os

import numpy as np
from numpy.lib import format as npformat

from bench.errors import DataFormatError

NPY_MAGIC = b"\x93NUMPY"


def load_npy(path: str | os.PathLike, what: str, max_elements: int) -> np.ndarray:
    """The array in ``path`` (a numeric ``.npy``), at most ``max_elements`` elements.

    Raises :class:`DataFormatError` (names the file and the problem) for a missing, empty,
    non-.npy, pickled, truncated or oversized file.
    """
    path = os.fspath(path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: is a directory, not a .npy {what} file") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read the {what} file ({exc.strerror})") from None
    with fh:
        head = fh.read(len(NPY_MAGIC))
        if head != NPY_MAGIC:
            kind = "an .npz archive" if head.startswith(b"PK") else ("empty" if not head else "not a .npy file")
            raise DataFormatError(f"{path}: {kind}; expected one .npy {what} array (numpy.save)")
        fh.seek(0)
        try:
            version = npformat.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = npformat.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = npformat.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many kinds
            raise DataFormatError(f"{path}: not a readable .npy {what} header ({' '.join(str(exc).split())})") \
                from None
        if dtype.hasobject:
            raise DataFormatError(f"{path}: holds a pickled (object) array; expected a numeric .npy {what} array")
        n = math.prod(shape)
        if n > max_elements:
            raise DataFormatError(f"{path}: header declares shape {tuple(shape)} ({n:,} elements); "
                                  f"a {what} array has at most {max_elements:,}")
        data_at = fh.tell()
        need = n * dtype.itemsize
        have = os.fstat(fh.fileno()).st_size - data_at
        if have < need:
            raise DataFormatError(f"{path}: truncated: header declares {need:,} bytes of data, "
                                  f"the file holds {have:,}")
        try:
            a = np.fromfile(fh, dtype=dtype, count=n).reshape(shape, order="F" if fortran else "C")
        except (ValueError, OSError) as exc:
            raise DataFormatError(f"{path}: not a readable .npy {what} array ({exc})") from None
    return a
