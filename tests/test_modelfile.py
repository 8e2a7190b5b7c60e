from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from flowcli import modelfile
from flowcli.errors import ModelFileError, OutputError


def payload() -> dict:
    return {
        "preprocessor": {"mean": np.float64(1.5), "shape": np.array([1, 2])},
        "flow": {"state_dict": {"w": torch.randn(3, 3)}},
        "training": {"version": torch.__version__, "epochs": np.int64(4)},
    }


def test_save_load_round_trip_with_plain_types(tmp_path: Path) -> None:
    path = tmp_path / "m.flow"
    data = payload()
    modelfile.save(data, path)
    back = modelfile.load(path)
    assert back["format"] == modelfile.FORMAT
    assert back["format_version"] == modelfile.FORMAT_VERSION
    assert back["preprocessor"] == {"mean": 1.5, "shape": [1, 2]}
    assert type(back["training"]["version"]) is str
    assert torch.equal(back["flow"]["state_dict"]["w"], data["flow"]["state_dict"]["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["m.flow"]  # no temporary files left
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's owner-only mode


def test_plain_refuses_objects() -> None:
    with pytest.raises(TypeError, match="cannot hold a object"):
        modelfile.plain({"x": object()})


def test_truncated_and_corrupted_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.flow"
    modelfile.save(payload(), path)
    raw = path.read_bytes()
    (tmp_path / "half.flow").write_bytes(raw[: len(raw) // 2])
    corrupted = bytearray(raw)
    corrupted[len(raw) // 3 : len(raw) // 3 + 64] = b"\x00" * 64
    (tmp_path / "bad.flow").write_bytes(bytes(corrupted))
    (tmp_path / "empty.flow").write_bytes(b"")
    (tmp_path / "text.flow").write_text("hello")
    for name, message in [("half.flow", "damaged or truncated"), ("bad.flow", "damaged"),
                          ("empty.flow", "empty"), ("text.flow", "damaged or truncated")]:
        with pytest.raises(ModelFileError, match=message):
            modelfile.load(tmp_path / name)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    data = {**payload(), "format": modelfile.FORMAT, "format_version": 99}
    torch.save(modelfile.plain(data), tmp_path / "new.flow")
    newest = modelfile.FORMAT_VERSION
    with pytest.raises(ModelFileError, match=r"newer flowcli \(model format 99; this version "
                                             rf"reads up to {newest}\); upgrade flowcli"):
        modelfile.load(tmp_path / "new.flow")


def test_other_torch_files_are_not_models(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="not a flowcli model file"):
        modelfile.load(tmp_path / "other.pt")
    torch.save({"format": modelfile.FORMAT, "format_version": 1}, tmp_path / "partial.flow")
    with pytest.raises(ModelFileError, match="missing preprocessor, flow, training"):
        modelfile.load(tmp_path / "partial.flow")


class _Exploit:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("zipped", [True, False])
def test_crafted_pickle_never_runs(tmp_path: Path, zipped: bool) -> None:
    marker = tmp_path / "pwned"
    evil = {"format": modelfile.FORMAT, "format_version": 1, "flow": _Exploit(marker)}
    path = tmp_path / "evil.flow"
    if zipped:
        torch.save(evil, path)  # torch's own container around a malicious pickle
    else:
        path.write_bytes(pickle.dumps(evil))
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="refused|damaged"):
        modelfile.load(path)
    assert not marker.exists()


def test_missing_folder_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such model file"):
        modelfile.load(tmp_path / "nope.flow")
    with pytest.raises(ModelFileError, match="is a folder"):
        modelfile.load(tmp_path)
    with pytest.raises(OutputError, match="no folder"):
        modelfile.save(payload(), tmp_path / "no" / "m.flow")
    with pytest.raises(OutputError, match="is a folder"):
        modelfile.save(payload(), tmp_path)


def test_failed_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "m.flow"
    modelfile.save(payload(), path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        modelfile.save({"x": object()}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.flow"]


def test_files_from_before_kept_was_recorded_mark_the_kept_candidate(tmp_path: Path) -> None:
    tried = [{"model": "maf", "whiten": False, "mixture": 0, "tails": False},
             {"model": "nsf", "whiten": False, "mixture": 0, "tails": True}]
    payload = {"preprocessor": {}, "training": {"candidates": tried},
               "flow": {"config": {"continuous": 2, "cardinalities": [], "chain_hidden": 64,
                                   "flow": {"kind": "nsf", "whiten": False, "tails": True}},
                        "state_dict": {}}}
    modelfile.save(payload, tmp_path / "m.flow", version=4)
    record = modelfile.read(str(tmp_path / "m.flow"))
    assert [c["kept"] for c in record.training["candidates"]] == [False, True]
    assert record.format == 4


def test_the_file_keeps_each_candidates_training_curve(tmp_path) -> None:
    import numpy as np
    import pandas as pd

    from flowcli import FlowModel

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    FlowModel.fit(df, epochs=3, seed=0, min_gain=0).save(str(tmp_path / "m.flow"))
    fitted = FlowModel.load(str(tmp_path / "m.flow"))
    for tried in fitted.training["candidates"]:
        assert len(tried["history"]) == tried["epochs"]
        assert [e["epoch"] for e in tried["history"]] == list(range(1, tried["epochs"] + 1))
    kept = fitted.training["history"]
    assert len(kept) == fitted.training["epochs"] and all(
        set(e) == {"epoch", "seconds", "train_ll", "val_ll"} for e in kept)
    stored = torch.load(tmp_path / "m.flow", weights_only=True)["training"]["candidates"]
    assert [("history" in c) for c in stored] == [not c["kept"] for c in stored]  # once
    done, tried = fitted.training["epochs"], fitted.training["candidates"]
    seconds = next(c["seconds"] for c in tried if c["kept"])
    others = [dict(c) for c in tried if not c["kept"]]
    resumed = fitted.resume_fit(df, epochs=done + 2)  # the curve carries on where it stopped
    assert [e["epoch"] for e in resumed.training["history"]] == list(range(1, done + 3))
    resumed.save(str(tmp_path / "resumed.flow"))
    for model in resumed, FlowModel.load(str(tmp_path / "resumed.flow")):
        # the kept candidate's entry tells the whole run, as the record does
        kept = next(c for c in model.training["candidates"] if c["kept"])
        assert kept["history"] == model.training["history"] and kept["epochs"] == done + 2
        assert kept["val_log_likelihood"] == model.training["val_log_likelihood"]
        assert kept["stopped"] == model.training["stopped"] and kept["seconds"] > seconds
        assert [c for c in model.training["candidates"] if not c["kept"]] == others


def test_a_file_that_stored_the_kept_curve_twice_reads_the_records_whole_curve(
        tmp_path: Path) -> None:
    """Files written before the curve was stored once hold a copy in the kept entry, which a
    resumed run left short: the record's own curve is the one read."""
    curve = [{"epoch": e, "seconds": 0.1, "train_ll": -1.0, "val_ll": -1.0} for e in (1, 2, 3)]
    tried = [{"model": "maf", "whiten": False, "kept": False, "history": curve[:1]},
             {"model": "nsf", "whiten": False, "kept": True, "history": curve[:2]}]
    payload = {"preprocessor": {}, "training": {"candidates": tried, "history": curve},
               "flow": {"config": {"continuous": 2, "cardinalities": [], "chain_hidden": 64,
                                   "flow": {"kind": "nsf"}}, "state_dict": {}}}
    modelfile.save(payload, tmp_path / "m.flow", version=4)
    read = modelfile.read(str(tmp_path / "m.flow")).training["candidates"]
    assert [c["history"] for c in read] == [curve[:1], curve]
