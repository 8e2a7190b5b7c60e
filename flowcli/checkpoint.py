"""The model file: one self-describing file of tensors and plain Python data.

Saving writes to a temporary file in the same folder, flushes, fsyncs and renames it into
place, so a crash or a kill at any moment leaves either the old file or the new one. Loading
uses ``torch.load(weights_only=True)``: the unpickler accepts tensors and plain containers only,
so a model file can never run code. Every failure becomes a :class:`ModelFileError` that names
the file and the reason.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._files import default_file_mode
from .errors import ModelFileError, OutputError

__all__ = ["FORMAT", "FORMAT_VERSION", "check_target", "load", "plain", "save"]

FORMAT = "flowcli-model"
# 2: spline flows and whitening layers; 3: mixture bases; 4: heavy-tail layers. A file is
# written with the lowest version that can read it, so models without a mixture base or a
# heavy-tail layer still load in releases that read up to 2; files of format 1 still load.
FORMAT_VERSION = 4
REQUIRED = ("format", "format_version", "preprocessor", "flow", "training")


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python data; refuse anything else.

    Allowed: dict with str keys, list, tuple, str, int, float, bool, None and tensors.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, (int, float, str)):  # subclasses: torch's version string, numpy floats
        return _base(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"model file keys must be str or int, got {type(k).__name__}")
            out[k] = plain(v)
        return out
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    raise TypeError(f"a model file cannot hold a {type(value).__name__}")


def _base(value: int | float | str) -> int | float | str:
    if isinstance(value, str):
        return str.__str__(value)
    return bool(value) if isinstance(value, bool) else int(value) if isinstance(value, int) \
        else float(value)


def check_target(path: str | os.PathLike[str]) -> None:
    """Fail early, before hours of training, when a model could not be written to ``path``."""
    target = Path(path)
    if str(path) == "-":
        raise OutputError("a model must be written to a file, not stdout")
    if target.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for the model")
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"{path}: cannot write the model: no folder {str(folder)!r}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write the model: permission denied")


def save(payload: dict[str, Any], path: str | os.PathLike[str],
         version: int = FORMAT_VERSION) -> None:
    """Write ``payload`` to ``path`` atomically (temp file, fsync, rename), marked as model
    format ``version``: the oldest format that holds everything in it."""
    data = plain(payload)
    data["format"] = FORMAT
    data["format_version"] = version
    check_target(path)
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except FileNotFoundError:
        raise OutputError(
            f"{path}: cannot write the model: no folder {str(target.parent)!r}"
        ) from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the model: {exc.strerror or exc}") from None
    try:
        default_file_mode(tmp)
        with os.fdopen(fd, "wb") as handle:
            torch.save(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot write the model: {exc.strerror or exc}") from None
        raise


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a model file safely; never executes code from it."""
    p = Path(path)
    if str(path) == "-":
        raise ModelFileError("a model must be a file, not stdin")
    if p.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a model file")
    if not p.exists():
        raise ModelFileError(f"{path}: no such model file")
    if p.stat().st_size == 0:
        raise ModelFileError(f"{path}: the model file is empty")
    try:
        with warnings.catch_warnings():  # the refusal below says all a user needs
            warnings.simplefilter("ignore")
            data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower() and "can only build" not in str(exc).lower():
            raise ModelFileError(f"{path}: damaged or truncated model file") from None
        raise ModelFileError(
            f"{path}: refused: the file holds objects other than tensors and plain data, which "
            f"a flowcli model never does (it may have been crafted to run code)"
        ) from None
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied") from None
    except Exception:  # arbitrary bytes make the unpickler fail in arbitrary ways
        raise ModelFileError(f"{path}: damaged or truncated model file") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a flowcli model file")
    version = data.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{path}: damaged model file (no format version)")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written by a newer flowcli (model format {version}; this version reads up "
            f"to {FORMAT_VERSION}); upgrade flowcli to use it"
        )
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ModelFileError(f"{path}: damaged model file (missing {', '.join(missing)})")
    return data
