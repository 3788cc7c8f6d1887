"""Memory-mapped members of an uncompressed ``.npz``.

``np.load`` on an ``.npz`` reads a whole member into memory, and the CTR-GCN-family NTU files are
many gigabytes. ``np.savez`` stores each array as an uncompressed (``ZIP_STORED``) ``.npy`` inside
the zip, so the array's bytes lie contiguously in the file: :class:`MappedNpz` finds them (the
member's local file header gives where its data start, the ``.npy`` header inside gives dtype,
shape and order) and maps them with :class:`numpy.memmap`. Nothing is read until it is indexed.

Compressed members (``np.savez_compressed``) cannot be mapped; they are read whole, and
:meth:`MappedNpz.array` says so, so the caller can record it. Object arrays are refused (they would
need pickle).
"""

from __future__ import annotations

import ast
import struct
import zipfile
from pathlib import Path

import numpy as np

from ..errors import UserError

__all__ = ["MappedNpz"]

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # the 30-byte zip local file header
_LOCAL_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_MAX_NPY_HEADER = 1 << 20


def _read_npy_header(f, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Parse a ``.npy`` header at the file position; leaves the position at the array data."""
    magic = f.read(8)
    if len(magic) != 8 or magic[:6] != _NPY_MAGIC:
        raise UserError(f"{where}: the member is not a .npy array")
    major = magic[6]
    if major == 1:
        (length,) = struct.unpack("<H", f.read(2))
    elif major in (2, 3):
        (length,) = struct.unpack("<I", f.read(4))
    else:
        raise UserError(f"{where}: unsupported .npy format version {major}.{magic[7]}")
    if length > _MAX_NPY_HEADER:
        raise UserError(f"{where}: implausible .npy header of {length} bytes")
    raw = f.read(length)
    try:
        header = ast.literal_eval(raw.decode("utf8" if major == 3 else "latin1"))
        shape = tuple(int(d) for d in header["shape"])
        fortran = bool(header["fortran_order"])
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except Exception as exc:
        raise UserError(f"{where}: unreadable .npy header ({exc})") from None
    if any(d < 0 for d in shape):
        raise UserError(f"{where}: negative dimension in .npy shape {shape}")
    return shape, fortran, dtype


class MappedNpz:
    """The members of an ``.npz``, mapped where stored uncompressed."""

    def __init__(self, path: str | Path, where: str | None = None) -> None:
        self.path = Path(path)
        self.where = where or str(self.path)
        try:
            with zipfile.ZipFile(self.path) as z:
                infos = z.infolist()
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise UserError(f"{self.where} is not a readable .npz file ({exc})") from None
        self._infos = {i.filename[:-4] if i.filename.endswith(".npy") else i.filename: i for i in infos}

    @property
    def files(self) -> list[str]:
        return list(self._infos)

    def __contains__(self, key: str) -> bool:
        return key in self._infos

    def is_mappable(self, key: str) -> bool:
        return self._infos[key].compress_type == zipfile.ZIP_STORED

    def array(self, key: str) -> tuple[np.ndarray, bool]:
        """Member ``key`` and whether it is memory-mapped (else it was read into memory)."""
        info = self._infos[key]
        where = f"{self.where} [{key}]"
        if info.flag_bits & 0x1:
            raise UserError(f"{where}: encrypted zip members cannot be read")
        if info.compress_type != zipfile.ZIP_STORED:
            return self._read_whole(info, where), False
        with open(self.path, "rb") as f:
            f.seek(info.header_offset)
            raw = f.read(_LOCAL_HEADER.size)
            if len(raw) != _LOCAL_HEADER.size:
                raise UserError(f"{where}: the file is truncated")
            fields = _LOCAL_HEADER.unpack(raw)
            if fields[0] != _LOCAL_MAGIC:
                raise UserError(f"{where}: damaged zip (no local header where the directory says)")
            name_len, extra_len = fields[-2], fields[-1]
            start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
            f.seek(start)
            shape, fortran, dtype = _read_npy_header(f, where)
            offset = f.tell()
        if dtype.hasobject:
            raise UserError(f"{where}: holds Python objects (a pickle), which are not read; store numeric arrays")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offset - start + nbytes > info.file_size:
            raise UserError(f"{where}: the .npy member is shorter than its header says (truncated file?)")
        if nbytes == 0:
            return np.zeros(shape, dtype=dtype), False
        try:
            arr = np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
        except (OSError, ValueError) as exc:
            raise UserError(f"{where}: cannot memory-map the member ({exc})") from None
        return arr, True

    def _read_whole(self, info: zipfile.ZipInfo, where: str) -> np.ndarray:
        try:
            with zipfile.ZipFile(self.path) as z, z.open(info) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except ValueError as exc:
            raise UserError(f"{where}: cannot read the member ({exc})") from None
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise UserError(f"{where}: damaged or truncated member ({exc})") from None
