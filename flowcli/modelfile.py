"""The model-file format: one self-describing file of tensors and plain data, its versions,
migration from older ones, and safe loading.

A model file is written atomically (:class:`~flowcli.files.AtomicFile`) with the lowest format
version that can read it, so models without newer parts still load in older releases:

=======  ============================================================
format   adds
=======  ============================================================
1        the first release: a bare flow config
2        categories, spline flows and whitening layers
3        mixture bases (``fit_config["mixture"]``)
4        heavy-tail layers (``fit_config["tails"]``)
5        supports inferred from training (``inferred`` columns, ``scale``)
6        unmix flows; a learning rate left to the defaults (``fit_config["lr"]`` None)
7        condition columns (``given`` columns)
8        a stopping rule on gains other than the default (``fit_config["min_gain"]``)
=======  ============================================================

Loading uses ``torch.load(weights_only=True)``: the unpickler accepts tensors and plain
containers only, so a model file can never run code. Every failure becomes a
:class:`~flowcli.errors.ModelFileError` that names the file and the reason.

A file is sealed with the SHA-256 of all its bytes, kept in the zip archive's comment (which
``torch.load`` and zip tools ignore), and checked before anything in it is used: damage
anywhere in the file is refused. Files written before the seal load as they always did.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import default, learning_rate
from .errors import ModelFileError
from .files import AtomicFile, check_target

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelRecord", "format_for", "load", "plain", "read",
           "read_content", "save", "seal", "unseal", "write"]

FORMAT = "flowcli-model"
FORMAT_VERSION = 10
REQUIRED = ("format", "format_version", "preprocessor", "flow", "training")
SEAL = b"flowcli-sha256:"
_END = b"PK\x05\x06"  # the zip archive's end record: 22 bytes, then the comment
_END_SIZE = 22
# fit config fields that came with a later format: files of earlier formats leave them out,
# since the releases that read only those refuse a field they do not know
LATER_FIT_FIELDS = (("mixture", 3), ("tails", 4), ("min_gain", 8))


@dataclass
class ModelRecord:
    """What a model file holds, as plain data and tensors (format 2 and later in memory)."""

    preprocessor: dict[str, Any]
    density_config: dict[str, Any]  # a MixedDensity config
    state_dict: dict[str, torch.Tensor]
    fit_config: dict[str, Any]
    training: dict[str, Any]
    resume: dict[str, Any] = field(default_factory=dict)
    created: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def format(self) -> int:
        return format_for(self.density_config.get("flow"), self.preprocessor, self.fit_config)


def format_for(flow_config: dict[str, Any] | None,
               preprocessor: dict[str, Any] | None = None,
               fit_config: dict[str, Any] | None = None) -> int:
    """The lowest format that holds a model: 10 with a grid found up to its values'
    rounding, 9 for a conditional model with a mixture base
    that moves with the condition, 8 when it was fitted with a ``min_gain`` other
    than the default (earlier releases read the file as fitted with none, which only
    matters to a resumed run), 7 for a conditional model, 6 for an unmix flow, 5 with a
    support inferred from training, 4 with a heavy-tail layer, 3 with a mixture base,
    else 2."""
    flow_config = flow_config or {}
    columns = (preprocessor or {}).get("schema", [])
    if any("decimals" in column for column in columns):
        return 10
    if flow_config.get("base_context"):
        return 9
    if (fit_config or {}).get("min_gain", default("min_gain")) != default("min_gain"):
        return 8
    if any(column.get("given") for column in columns):
        return 7
    if flow_config.get("kind") == "unmix":
        return 6
    if any(column.get("inferred") for column in columns):
        return 5
    return 4 if flow_config.get("tails") else 3 if flow_config.get("mixture") else 2


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python data; refuse anything else.

    Allowed: dict with str keys, list, tuple, str, int, float, bool, None and tensors.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, (int, float, str)):  # subclasses: enums, torch's version string
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


def write(record: ModelRecord, path: str) -> None:
    """Write ``record`` as a model file of the lowest format that holds it."""
    version = record.format
    fit_config = dict(record.fit_config)
    for name, since in LATER_FIT_FIELDS:
        if version < since:
            fit_config.pop(name, None)
    if version < 6 and fit_config.get("lr", 0.0) is None:
        # earlier releases need a number: the step this flow took by default (a model
        # given conditions is format 7 or later)
        fit_config["lr"] = learning_rate(record.density_config.get("flow"),
                                         fit_config.get("model"))
    payload = {
        **record.versions,
        "created": record.created,
        "preprocessor": record.preprocessor,
        "flow": {"config": record.density_config, "state_dict": record.state_dict},
        "fit_config": fit_config,
        "training": _history_once(record.training),
        "resume": record.resume,
    }
    save(payload, path, version)


def read(path: str, content: bytes | None = None) -> ModelRecord:
    """Read a model file safely and bring it to the current layout. ``content``: the file's
    bytes, already read (a model sent to another process); ``path`` then only names it."""
    data = load(path, content)
    try:
        config, state = data["flow"]["config"], data["flow"]["state_dict"]
        if "continuous" not in config:  # format 1: a bare flow config and its weights
            config = {"continuous": config["features"], "cardinalities": [],
                      "flow": config, "chain_hidden": 64}
            state = {f"flow.{k}": v for k, v in state.items()}
        training = _kept_history(_mark_kept(dict(data["training"]), config.get("flow") or {}))
        return ModelRecord(data["preprocessor"], config, state, data.get("fit_config", {}),
                           training, data.get("resume") or {}, data.get("created"))
    except (KeyError, TypeError, AttributeError):
        raise ModelFileError(f"{path}: damaged model file (unreadable layout)") from None


def _mark_kept(training: dict[str, Any], flow: dict[str, Any]) -> dict[str, Any]:
    """Files written before ``kept`` was recorded: the kept candidate is the one whose
    architecture is the model's."""
    tried = training.get("candidates")
    if not tried or all("kept" in c for c in tried):
        return training
    model = (flow.get("kind"), flow.get("whiten", False), flow.get("mixture", 0),
             flow.get("tails", False))
    training["candidates"] = [
        {**c, "kept": (c["model"], c["whiten"], c.get("mixture", 0), c.get("tails", False))
         == model} for c in tried]
    return training


def _history_once(training: dict[str, Any]) -> dict[str, Any]:
    """The record with the kept candidate's curve left out of ``auto``'s list of the
    candidates tried: it is the record's own ``history``, stored once (it can run to
    thousands of epochs) and shared again on reading (:func:`_kept_history`)."""
    tried = training.get("candidates")
    if not tried:
        return training
    return {**training, "candidates": [
        {k: v for k, v in c.items() if k != "history"} if c.get("kept") else c
        for c in tried]}


def _kept_history(training: dict[str, Any]) -> dict[str, Any]:
    """The kept candidate's curve is the record's ``history``. Files that stored it twice
    may hold a copy that a resumed run left behind; the record's is the whole curve."""
    tried = training.get("candidates")
    if tried:
        training["candidates"] = [{**c, "history": training.get("history", [])}
                                  if c.get("kept") else c for c in tried]
    return training


def save(payload: dict[str, Any], path: str, version: int = FORMAT_VERSION) -> None:
    """Write ``payload`` to ``path`` atomically and sealed, marked as model format
    ``version``."""
    data = plain(payload)
    data["format"] = FORMAT
    data["format_version"] = version
    check_target(path, "the model")
    buffer = io.BytesIO()
    torch.save(data, buffer)
    with AtomicFile(path, "the model") as file:
        file.handle.write(seal(buffer.getvalue()))


def seal(archive: bytes) -> bytes:
    """``archive`` (a zip without a comment) with the SHA-256 of its bytes as its comment."""
    if archive[-_END_SIZE:-_END_SIZE + 4] != _END or archive[-2:] != b"\x00\x00":
        raise ValueError("expected a zip archive without a comment")
    comment = SEAL + hashlib.sha256(archive).hexdigest().encode()
    return archive[:-2] + len(comment).to_bytes(2, "little") + comment


def unseal(data: bytes, path: str) -> bytes:
    """The archive inside a model file's bytes, checked against its seal; an unsealed file
    (written before seals) as it is. Damage anywhere is a :class:`ModelFileError`."""
    end = data.rfind(_END, max(0, len(data) - _END_SIZE - 65535))
    if end < 0 or end + _END_SIZE > len(data):
        raise ModelFileError(f"{path}: damaged or truncated model file")
    size = int.from_bytes(data[end + _END_SIZE - 2 : end + _END_SIZE], "little")
    if end + _END_SIZE + size != len(data):
        raise ModelFileError(f"{path}: damaged or truncated model file")
    if size == 0:
        return data
    archive = data[: end + _END_SIZE - 2] + b"\x00\x00"
    expected = SEAL + hashlib.sha256(archive).hexdigest().encode()
    if data[end + _END_SIZE :] != expected:
        raise ModelFileError(f"{path}: damaged model file (its bytes do not match the "
                             f"checksum written with it)")
    return archive


def read_content(path: str) -> bytes:
    """The bytes of the model file at ``path``; a missing, empty, unreadable or folder path
    is a :class:`ModelFileError`."""
    _check_source(path)
    try:
        return Path(path).read_bytes()
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied") from None


def load(path: str, content: bytes | None = None) -> dict[str, Any]:
    """Read a model file's payload safely (from ``content`` when given); never executes code
    from it."""
    try:
        archive = unseal(read_content(path) if content is None else content, path)
        with warnings.catch_warnings():  # the refusal below says all a user needs
            warnings.simplefilter("ignore")
            data = torch.load(io.BytesIO(archive), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc).lower()
        if "global" not in text and "can only build" not in text:
            raise ModelFileError(f"{path}: damaged or truncated model file") from None
        raise ModelFileError(
            f"{path}: refused: the file holds objects other than tensors and plain data, which "
            f"a flowcli model never does (it may have been crafted to run code)"
        ) from None
    except ModelFileError:
        raise
    except Exception:  # arbitrary bytes make the unpickler fail in arbitrary ways
        raise ModelFileError(f"{path}: damaged or truncated model file") from None
    _check_payload(data, path)
    return data


def _check_source(path: str) -> None:
    p = Path(path)
    if str(path) == "-":
        raise ModelFileError("a model must be a file, not stdin")
    if p.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a model file")
    if not p.exists():
        raise ModelFileError(f"{path}: no such model file")
    if p.stat().st_size == 0:
        raise ModelFileError(f"{path}: the model file is empty")


def _check_payload(data: Any, path: str) -> None:
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
