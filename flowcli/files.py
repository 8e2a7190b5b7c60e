"""Atomic file writing, shared by model files and table outputs.

A file is written under a temporary name in its target's folder, flushed, fsynced and renamed
into place only when complete, so a crash, a kill or an error at any moment leaves either the
old file or the new one, never a truncated file that looks complete. No heavy imports.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO

from .errors import OutputError

__all__ = ["AtomicFile", "Committed", "check_target"]


def _default_file_mode(path: str) -> None:
    """Give a temporary file the mode a new file gets (mkstemp makes it owner-only)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def check_target(path: str | os.PathLike[str], what: str = "") -> None:
    """Fail early when a file could not be written at ``path`` (before hours of training).

    ``what`` names the file in messages (``"the model"``); folders and stdout are refused.
    """
    target = Path(path)
    noun = f" {what}" if what else ""
    if str(path) == "-":
        article = what.replace("the ", "a ", 1) if what else "the output"
        raise OutputError(f"{article} must be written to a file, not stdout")
    if target.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name" +
                          (f" for{noun}" if what else ""))
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"{path}: cannot write{noun}: no folder {str(folder)!r}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write{noun}: permission denied")


class Committed:
    """A context manager for outputs that :meth:`commit` when the block ends cleanly and
    :meth:`abort` when it ends by an exception (Ctrl-C included)."""

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):  # noqa: ANN204 - the subclass itself
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class AtomicFile(Committed):
    """A binary file at ``path`` that appears only on :meth:`commit`.

    Write to :attr:`handle`; :meth:`abort` (or leaving a ``with`` block by an exception)
    removes the temporary file and leaves the target as it was. ``what`` names the file in
    messages (``"the model"``).
    """

    def __init__(self, path: str | os.PathLike[str], what: str = "") -> None:
        self.path = str(path)
        self._noun = f" {what}" if what else ""
        folder = Path(self.path).parent
        try:
            fd, self._tmp = tempfile.mkstemp(dir=folder, prefix=f".{Path(self.path).name}.",
                                             suffix=".tmp")
        except FileNotFoundError:
            raise self._error(f"no folder {str(folder)!r}") from None
        except PermissionError:
            raise self._error("permission denied") from None
        except OSError as exc:
            raise self._error(exc.strerror or str(exc)) from None
        self._done = False
        _default_file_mode(self._tmp)
        self.handle: IO[bytes] = os.fdopen(fd, "wb")

    def _error(self, reason: str) -> OutputError:
        return OutputError(f"{self.path}: cannot write{self._noun}: {reason}")

    def commit(self) -> None:
        """Flush, fsync, close and rename into place."""
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            os.replace(self._tmp, self.path)
            self._done = True
        except OSError as exc:
            self.abort()
            raise self._error(exc.strerror or str(exc)) from None

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was. Repeating it does no harm."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self.handle.close()
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)
