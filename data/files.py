"""Files every stage reads and writes: text lines decoded one way, outputs written whole.

`text_lines` is the one line reader (UTF-8, a first-line BOM and CRLF dropped, invalid bytes
named as FILE:LINE or replaced); `atomic_path` the one way to write a file that must never be
left half-written; `check_output` / `check_input_file` refuse unusable paths before any work.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


class DataError(Exception):
    """Bad input data; str() is `path:line: message`."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")

UTF8_HINT = "the input must be UTF-8, or pass --errors replace"
_BOM = b"\xef\xbb\xbf"


def decode_line(raw: bytes, name: str, number: int, errors: str = "strict",
                hint: str = UTF8_HINT) -> str:
    """One line's bytes (line end included or not) as text; DataError naming FILE:LINE."""
    raw = raw.rstrip(b"\n").rstrip(b"\r")
    if number == 1 and raw.startswith(_BOM):
        raw = raw[3:]
    try:
        return raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as error:
        raise DataError(name, number, f"invalid UTF-8 (byte 0x{raw[error.start]:02x} at byte "
                                      f"{error.start + 1} of the line); {hint}") from None


def text_lines(name: str, stream: BinaryIO, errors: str = "strict", first_line: int = 1,
               hint: str = UTF8_HINT) -> Iterator[str]:
    """The lines of a binary stream (or of any iterable of byte lines) as text, streamed."""
    for number, raw in enumerate(stream, first_line):
        yield decode_line(raw, name, number, errors, hint)


FILE_UTF8_HINT = "the file must be UTF-8"


def decode_file(path: str | Path, errors: str = "strict", strip_bom: bool = True) -> str:
    """A whole file as UTF-8 text (decoded at once: fast), naming the line of a bad byte."""
    return decode_bytes(Path(path).read_bytes(), path, errors, strip_bom)


def decode_bytes(raw: bytes, path: str | Path, errors: str = "strict",
                 strip_bom: bool = True) -> str:
    """decode_file of bytes already read from `path`."""
    if strip_bom and raw.startswith(_BOM):
        raw = raw[3:]
    try:
        return raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        start = raw.rfind(b"\n", 0, error.start) + 1
        end = raw.find(b"\n", error.start)
        decode_line(raw[start:end if end >= 0 else len(raw)], path, line, hint=FILE_UTF8_HINT)
        raise


# -- paths ------------------------------------------------------------------------------------
def check_input_file(path: str | Path) -> None:
    """DataError unless path is a readable file (`-` for stdin is the caller's to allow)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, None, "is a folder, not a file")
    if not path.exists():
        raise DataError(path, None, "no such file")
    if not os.access(path, os.R_OK):
        raise DataError(path, None, "cannot be read (permission denied)")


def check_output(path: str | Path, create_parent: bool = False, folder: bool = False) -> None:
    """Refuse, before any work, an output that could not be written at the end.

    A file output must not be a folder; a folder output (folder=True) must not be a file.
    Its parent must exist (or is created with create_parent) and be writable."""
    path = Path(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise DataError(path, None, "exists and is not a folder")
    elif path.is_dir():
        raise DataError(path, None, "is a folder: name a file to write")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        if not create_parent:
            raise DataError(path, None, f"its folder {parent} does not exist")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(path, None, f"cannot create its folder ({error.strerror})") from None
    if not parent.is_dir():
        raise DataError(path, None, f"{parent} is not a folder")
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        raise DataError(path, None, "cannot be written (permission denied)")


def _file_mode(path: Path) -> int:
    """The permissions of the file being replaced, else what open() would give (mkstemp's
    own 0600 would otherwise be handed on by the rename)."""
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside `path` to write in full; renamed to `path` when the block ends
    without an exception, removed otherwise, so `path` is either the old file or the whole new
    one. suffix: an ending the writer insists on (Keras saves only to `.keras`)."""
    path = Path(path)
    handle, name = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                                    prefix=f".{path.name}.", suffix=f".partial{suffix}")
    os.close(handle)
    partial = Path(name)
    try:
        os.chmod(partial, _file_mode(path))
        yield partial
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


@contextmanager
def atomic_text(path: str | Path) -> Iterator:
    """A text handle (UTF-8, "\\n" line ends) whose file replaces `path` only when complete."""
    with atomic_path(path) as partial, \
            open(partial, "w", encoding="utf-8", newline="\n") as handle:
        yield handle


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_text(path) as handle:
        handle.write(text)
