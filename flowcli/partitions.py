"""Partitioned datasets: a folder or a glob of Parquet files read part by part, and output
folders that appear only when complete.

A dataset is every file under a folder (files and folders whose names start with ``.`` or
``_``, such as ``_SUCCESS``, are skipped), or every file a glob pattern matches. Each part must
be a Parquet file, and all parts must have the same columns with the same types. Hive-style
folders (``region=EU/``) give each row of the files under them a column of that name; its
values are integers when every part's value reads as one, else decimals when every one reads
as a number, else text (``007`` stays text: a code, not a number).

An output folder (``-o DIR/``) is written under a temporary name beside it and renamed into
place when every part is written, so a failed or interrupted run leaves no partial dataset;
a folder that already exists is refused rather than mixed into.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DataError, OutputError
from .files import Committed

__all__ = ["FolderWriter", "Part", "dataset_column_types", "dataset_parts", "is_dataset",
           "is_folder_output", "iter_part", "not_parquet", "read_dataset", "with_keys"]

_GLOB = "*?["
_MAGIC = b"PAR1"


def is_dataset(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a dataset (a folder, or a glob pattern) rather than one table."""
    text = str(path)
    if text == "-" or os.path.isfile(text):  # a file named with [ or * is still one table
        return False
    return os.path.isdir(text) or any(c in text for c in _GLOB)


def is_folder_output(path: str | os.PathLike[str]) -> bool:
    """Whether an output path asks for a folder of parts: it ends with a slash."""
    return str(path).endswith(("/", os.sep))


@dataclass(frozen=True)
class Part:
    """One file of a dataset: where it is, where it sits within the dataset (an output
    folder mirrors that), and the hive-style keys of its folders."""

    path: Path
    relative: Path
    keys: dict[str, object] = field(default_factory=dict)


def dataset_parts(path: str | os.PathLike[str]) -> list[Part]:
    """The parts of the dataset at ``path``, in name order, checked to be Parquet files of
    one schema."""
    text = str(path)
    root, files = _files(text)
    if not files:
        where = "in the folder" if os.path.isdir(text) else "match the pattern"
        raise DataError(f"no files {where}", source=text)
    for file in files:
        if not _is_parquet(file):
            raise DataError("not a Parquet file: a dataset folder or pattern holds Parquet "
                            "files only", source=str(file))
    relative = [file.relative_to(root) for file in files]
    keys = _hive_keys(relative)
    parts = [Part(f, r, k) for f, r, k in zip(files, relative, keys, strict=True)]
    _check_schemas(parts)
    return parts


def _files(text: str) -> tuple[Path, list[Path]]:
    """The dataset's root folder and its files, sorted."""
    if os.path.isdir(text):
        root = Path(text)
        found = [p for p in root.rglob("*") if p.is_file()
                 and not any(n.startswith((".", "_")) for n in p.relative_to(root).parts)]
        return root, sorted(found)
    static = text[: min(text.find(c) for c in _GLOB if c in text)]
    root = Path(static if static.endswith(os.sep) else os.path.dirname(static) or ".")
    found = [Path(p) for p in glob.glob(text, recursive=True) if os.path.isfile(p)]
    return root, sorted(found)


def _is_parquet(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == _MAGIC
    except OSError:
        raise DataError("cannot read the file", source=str(path)) from None


def _hive_keys(relative: list[Path]) -> list[dict[str, object]]:
    """Each part's ``key=value`` folders, each key's values typed once for all parts."""
    raw = [dict(p.split("=", 1) for p in r.parent.parts if "=" in p) for r in relative]
    for name in {name for keys in raw for name in keys}:
        values = [keys[name] for keys in raw if name in keys]
        convert = _key_type(values)
        for keys in raw:
            if name in keys:
                keys[name] = convert(keys[name])
    return raw


def _key_type(values: list[str]) -> type:
    """``int`` when every value is a plain integer, ``float`` when every one is a number,
    else ``str``; a value with a leading zero (``007``) keeps them all text."""
    def reads_as(kind: type, text: str) -> bool:
        try:
            kind(text)
        except ValueError:
            return False
        return True

    if any(len(v) > 1 and v.lstrip("-").startswith("0") and not v.startswith("0.")
           for v in values):
        return str
    for kind in (int, float):
        if all(reads_as(kind, v) for v in values):
            return kind
    return str


def _check_schemas(parts: list[Part]) -> None:
    """Every part has the first part's columns and types (its hive keys included)."""
    first = dataset_column_types(parts[0])
    for part in parts[1:]:
        columns = dataset_column_types(part)
        if columns == first:
            continue
        missing = [c for c in first if c not in columns]
        extra = [c for c in columns if c not in first]
        if missing or extra:
            what = (f"lacks column {missing[0]!r}" if missing else f"has column {extra[0]!r}")
            raise DataError(f"{what}, unlike {parts[0].path}: the parts of a dataset must have "
                            "the same columns", source=str(part.path))
        name = next(c for c in first if first[c] != columns[c])
        raise DataError(f"column {name!r} is {columns[name]} here and {first[name]} in "
                        f"{parts[0].path}: the parts of a dataset must agree on types",
                        source=str(part.path))


def not_parquet(path: str | os.PathLike[str], exc: BaseException) -> DataError:
    """The error for a file that pyarrow cannot read as Parquet, its reason on one line."""
    return DataError(f"not a valid Parquet file ({' '.join(str(exc).split())})",
                     source=str(path))


def dataset_column_types(part: Part) -> dict[str, str]:
    """A part's columns and their types, its hive keys included."""
    try:
        schema = pq.read_schema(part.path)
    except (pa.ArrowException, OSError) as exc:
        raise not_parquet(part.path, exc) from None
    columns = {f.name: str(f.type) for f in schema}
    for key in part.keys:
        if key in columns:
            raise DataError(f"its folder {key}=... names a column the file also holds, "
                            f"{key!r}", source=str(part.path))
    columns.update({k: type(v).__name__ for k, v in part.keys.items()})
    return columns


def iter_part(part: Part, batch_size: int,
              columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The part's rows in chunks of at most ``batch_size``, with its hive keys as columns;
    with ``columns``, only those of them it has (the keys among them)."""
    try:
        pf = pq.ParquetFile(part.path)
        in_file = None if columns is None else [c for c in columns
                                                if c in pf.schema_arrow.names]
        empty = True
        for batch in pf.iter_batches(batch_size=batch_size, columns=in_file):
            empty = False
            yield with_keys(batch.to_pandas(), part.keys, columns)
        if empty:
            table = pf.schema_arrow.empty_table()
            table = table.select(in_file) if in_file is not None else table
            yield with_keys(table.to_pandas(), part.keys, columns)
    except (pa.ArrowException, OSError) as exc:
        raise not_parquet(part.path, exc) from None


def with_keys(df: pd.DataFrame, keys: dict[str, object], columns: list[str] | None
              ) -> pd.DataFrame:
    """``df`` with a column per hive key (only those in ``columns``, when given), of the
    key's type even when ``df`` has no rows (so an empty part does not make it text)."""
    for name, value in keys.items():
        if columns is None or name in columns:
            dtype = pd.Series([value], dtype=object).infer_objects().dtype
            df[name] = pd.Series([value] * len(df), index=df.index, dtype=dtype)
    return df


def read_dataset(path: str | os.PathLike[str], columns: list[str] | None = None
                 ) -> pd.DataFrame:
    """The whole dataset at ``path`` as one table, parts in name order."""
    frames = [chunk for part in dataset_parts(path)
              for chunk in iter_part(part, 1 << 20, columns)]
    return pd.concat(frames, ignore_index=True)


class FolderWriter(Committed):
    """An output folder of parts that appears at ``path`` only on :meth:`commit`.

    Parts are written into a temporary folder beside it; :meth:`abort` (or leaving a
    ``with`` block by an exception) removes that folder. An existing ``path`` is refused.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(str(path).rstrip("/" + os.sep) or ".")
        if self.path.exists():
            raise OutputError(f"{self.path}: already exists; give a new folder (flowcli "
                              "does not write into an existing one)")
        parent = self.path.parent
        if not parent.is_dir():
            raise OutputError(f"{self.path}: cannot write: no folder {str(parent)!r}")
        try:
            self.temporary = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.",
                                                   suffix=".partial", dir=parent))
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(self.temporary, 0o777 & ~mask)  # the mode a new folder gets
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write: {exc.strerror or exc}") from None

    def part_path(self, relative: Path, extension: str) -> Path:
        """Where the part at ``relative`` goes (its folders made), with ``extension``."""
        target = self.temporary / relative.with_suffix(extension)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def commit(self) -> None:
        try:
            os.rename(self.temporary, self.path)
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.path}: cannot move the finished folder into place "
                              f"({exc.strerror or exc})") from None

    def abort(self) -> None:
        shutil.rmtree(self.temporary, ignore_errors=True)
