"""score, invert and sample on Dask: the same rows as one process, whatever the cluster."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowcli import FlowModel
from flowcli.errors import Advice, DataError, OutputError, SchemaError, UsageError
from flowcli.jobs import InvertJob, SampleJob, ScoreJob, partition_seed

dd = pytest.importorskip("dask.dataframe")
flowcli_dask = pytest.importorskip("flowcli.dask")
parallel = pytest.importorskip("flowcli.parallel")


def cli(*args: object, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "flowcli", *map(str, args)], input=stdin,
                          capture_output=True, timeout=300)


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(10.0, 2.0, n)
    return pd.DataFrame({"a": a, "b": 0.5 * a + rng.normal(0.0, 1.0, n),
                         "kind": rng.choice(["x", "y", "z"], n)})


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.flow"
    FlowModel.fit(_table(600), model="maf", layers=2, hidden=8, epochs=2, seed=0).save(str(path))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six parts of 4,000 rows under hive-style folders."""
    root = tmp_path_factory.mktemp("lake") / "data"
    for i in range(6):
        part = root / f"day={i // 3}" / f"p{i}.parquet"
        part.parent.mkdir(parents=True, exist_ok=True)
        _table(4000, seed=i + 1).to_parquet(part, index=False)
    return root


@pytest.fixture(scope="module")
def client():
    with flowcli_dask.connect(workers=2) as client:
        yield client


def test_score_on_two_workers_writes_what_one_process_writes(model, dataset, tmp_path) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    assert cli("score", model, dataset, "-o", f"{here}/", "--percentile", "-q").returncode == 0
    done = cli("score", model, dataset, "-o", f"{there}/", "--percentile", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert b"scored 24,000 rows" in done.stderr
    parts = sorted(p.relative_to(here) for p in here.rglob("*.parquet"))
    assert len(parts) == 6
    assert sorted(p.relative_to(there) for p in there.rglob("*.parquet")) == parts
    for part in parts:
        pd.testing.assert_frame_equal(pd.read_parquet(there / part), pd.read_parquet(here / part))


def test_sample_rows_do_not_depend_on_the_number_of_workers(model, tmp_path) -> None:
    tables = []
    for workers in (1, 3):
        out = tmp_path / f"w{workers}"
        done = cli("sample", model, "-n", 10_000, "--batch-size", 3000, "--seed", 7,
                   "-o", f"{out}/", "--workers", workers, "-q")
        assert done.returncode == 0, done.stderr
        assert len(list(out.glob("part-*.parquet"))) == 4
        tables.append(pd.read_parquet(out))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert len(tables[0]) == 10_000


def test_partitions_are_drawn_from_their_own_seeds(model) -> None:
    job = SampleJob(rows=5000, seed=3, partition_rows=2000)
    fitted = FlowModel.load(str(model))
    assert [job.partition_size(i) for i in range(job.partitions)] == [2000, 2000, 1000]
    first = job.table(fitted, 1)
    pd.testing.assert_frame_equal(first, job.table(fitted, 1))
    assert not first.equals(job.table(fitted, 0))
    assert partition_seed(3, 1) != partition_seed(3, 2) != partition_seed(4, 1)


def test_invert_to_stdout_on_a_cluster_keeps_the_input_order(model, dataset) -> None:
    plain = cli("invert", model, dataset, "--batch-size", 1000)
    spread = cli("invert", model, dataset, "--batch-size", 1000, "--workers", "2")
    assert spread.returncode == 0, spread.stderr
    assert spread.stdout == plain.stdout and spread.stdout.count(b"\n") == 24_001


def test_one_output_file_from_a_cluster_holds_every_row_in_order(model, dataset, client,
                                                                   tmp_path) -> None:
    content, name, _ = flowcli_dask.model_content(model)
    pieces = parallel.table_pieces(str(dataset), None)
    target = tmp_path / "inverted.parquet"
    totals = parallel.run(client, InvertJob(), content, name, pieces, str(target), None, 1000)
    assert totals.written == 24_000
    plain = pd.concat(InvertJob().tables(FlowModel.load(str(model)), [pd.read_parquet(dataset)]))
    np.testing.assert_allclose(pd.read_parquet(target)[["z_0", "z_1"]], plain[["z_0", "z_1"]],
                               atol=1e-5)


def test_a_worker_killed_mid_run_is_retried_and_the_output_is_complete(
        model, dataset, client, tmp_path) -> None:
    victim, pid = next(iter(client.run(os.getpid).items()))
    pieces = [parallel.Piece(p.source, Path(f"r{i}") / p.relative, part=p.part)
              for i, p in enumerate(parallel.table_pieces(str(dataset), None) * 8)]
    content, name, _ = flowcli_dask.model_content(model)
    result: dict[str, object] = {}

    def go() -> None:
        result["totals"] = parallel.run(client, ScoreJob(), content, name, pieces,
                                        f"{tmp_path}/out/", None, 200)

    runner = threading.Thread(target=go)
    runner.start()
    deadline = time.monotonic() + 60
    while not client.processing().get(victim) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert client.processing().get(victim), "no task reached the worker to kill"
    os.kill(pid, signal.SIGKILL)  # while it runs a task
    runner.join(timeout=240)
    assert result["totals"].written == 8 * 24_000
    out = [pd.read_parquet(p) for p in (tmp_path / "out").rglob("*.parquet")]
    assert len(out) == 48 and sum(map(len, out)) == 8 * 24_000
    assert all(np.isfinite(part["log_prob"]).all() for part in out)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]


def test_a_task_whose_workers_keep_dying_ends_in_one_line(model, dataset, tmp_path) -> None:
    import dask

    from flowcli.errors import FlowcliError

    pieces = parallel.table_pieces(str(dataset), None) * 8
    pieces = [parallel.Piece(p.source, Path(f"r{i}") / p.relative, part=p.part)
              for i, p in enumerate(pieces)]
    content, name, _ = flowcli_dask.model_content(model)
    result: dict[str, object] = {}
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            flowcli_dask.connect(workers=1) as client:
        victim, pid = next(iter(client.run(os.getpid).items()))

        def go() -> None:
            try:
                parallel.run(client, ScoreJob(), content, name, pieces, f"{tmp_path}/out/",
                             None, 200)
            except FlowcliError as exc:
                result["error"] = str(exc)

        runner = threading.Thread(target=go)
        runner.start()
        deadline = time.monotonic() + 60
        while not client.processing().get(victim) and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
        runner.join(timeout=240)
    assert "Dask workers died running one task" in str(result.get("error"))
    assert "\n" not in str(result["error"])
    assert not list(tmp_path.iterdir())


def test_a_bad_partition_is_named_by_the_python_entry(model) -> None:
    rows = dd.from_pandas(pd.concat([_table(20), _table(20).assign(kind="unheard-of")],
                                    ignore_index=True), npartitions=2)
    with pytest.raises(DataError, match="partition 1.*unheard-of"):
        flowcli_dask.score(rows, model).compute(scheduler="sync")


def test_bad_input_on_a_worker_fails_in_one_line_and_leaves_no_folder(model, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _table(50).to_parquet(data / "p0.parquet", index=False)
    _table(50).assign(kind="unheard-of").to_parquet(data / "p1.parquet", index=False)
    done = cli("score", model, data, "-o", f"{tmp_path}/out/", "--workers", "2")
    err = done.stderr.decode()
    assert done.returncode == 1
    assert err.count("\n") == 1 and "p1.parquet" in err and "unheard-of" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize(("args", "needle"), [
    (("--workers", "0"), "--workers"),
    (("--workers", "2", "--scheduler", "tcp://127.0.0.1:1"), "not both"),
    (("--scheduler", "tcp://127.0.0.1:1"), "cannot reach the Dask scheduler"),
])
def test_cluster_options_are_refused_in_one_line(model, dataset, args, needle) -> None:
    done = cli("score", model, dataset, *args)
    assert done.returncode != 0
    assert done.stderr.decode().count("\n") == 1 and needle in done.stderr.decode()


def test_a_damaged_part_is_named_in_one_line(model, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _table(50).to_parquet(data / "p0.parquet", index=False)
    (data / "p1.parquet").write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    done = cli("score", model, data, "-o", f"{tmp_path}/out/", "--workers", "1")
    err = done.stderr.decode()
    assert done.returncode == 1 and err.count("\n") == 1 and "p1.parquet" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_stdin_and_empty_folders_are_refused_before_a_cluster_starts(model, tmp_path) -> None:
    done = cli("score", model, "-", "--workers", "2", stdin=b"a,b,kind\n1,2,x\n")
    assert done.returncode == 2 and b"stdin" in done.stderr
    (tmp_path / "empty").mkdir()
    done = cli("score", model, tmp_path / "empty", "-o", f"{tmp_path}/out/", "--workers", "2")
    assert done.returncode == 1 and b"no files in the folder" in done.stderr
    assert not (tmp_path / "out").exists()


def test_rows_that_do_not_add_up_write_nothing() -> None:
    with pytest.raises(OutputError, match="wrote 5 rows for 6"):
        parallel._check_rows(parallel.Totals(6, 5), 6, "out/")
    with pytest.raises(OutputError, match="wrote 5 rows for 6"):  # a file read short
        parallel._check_rows(parallel.Totals(5, 5), 6, "out/")
    with pytest.raises(OutputError, match="wrote 4 rows for 5"):  # CSV: rows read are all
        parallel._check_rows(parallel.Totals(5, 4), None, "out/")
    parallel._check_rows(parallel.Totals(6, 6), None, "out/")


def test_the_python_entry_scores_a_dask_dataframe(model) -> None:
    df = _table(3000, seed=9)
    scored = flowcli_dask.score(dd.from_pandas(df, npartitions=3), model, percentile=True)
    assert list(scored.columns) == ["a", "b", "kind", "log_prob", "percentile"]
    got = scored.compute(scheduler="sync")
    want = FlowModel.load(str(model)).score(df)
    np.testing.assert_allclose(got["log_prob"], want, atol=1e-5)
    drawn = flowcli_dask.sample(model, 2500, seed=1, partition_rows=1000)
    assert drawn.npartitions == 3
    assert len(drawn.compute(scheduler="sync")) == 2500


def test_without_dask_the_option_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(UsageError, match=r"pip install 'flowcli\[dask\]'"):
        flowcli_dask.require()


def test_errors_cross_processes_with_their_fields() -> None:
    error = DataError("bad value", source="p1.parquet", column="a", row=3,
                      advice=Advice("missing", verb="use"))
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is DataError and (back.source, back.column, back.row) == \
        ("p1.parquet", "a", 3)
    assert str(back) == str(error)


# ------------------------------------------------------------ sample --given on a cluster
def _shops(n: int, seed: int = 0) -> pd.DataFrame:
    """An amount whose mean is set by the shop (a label) and the load (a number)."""
    rng = np.random.default_rng(seed)
    shop = rng.choice(["north", "south"], n)
    load = rng.normal(0.0, 1.0, n)
    amount = np.where(shop == "north", -4.0, 4.0) + 0.5 * load + rng.normal(0.0, 0.3, n)
    return pd.DataFrame({"shop": shop, "load": load, "amount": amount})


@pytest.fixture(scope="module")
def conditional(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("conditional") / "c.flow"
    FlowModel.fit(_shops(1500), model="maf", layers=2, hidden=32, epochs=100, seed=0,
                  condition=["shop", "load"]).save(str(path))
    return path


def test_sample_given_a_condition_does_not_depend_on_the_number_of_workers(
        conditional, tmp_path) -> None:
    tables = []
    for workers in (1, 3):
        out = tmp_path / f"w{workers}"
        done = cli("sample", conditional, "--given", "shop=south", "--given", "load=0.5",
                   "-n", 5000, "--batch-size", 2000, "--seed", 4, "-o", f"{out}/",
                   "--workers", workers)
        assert done.returncode == 0, done.stderr
        assert b"wrote 5,000 rows" in done.stderr
        assert len(list(out.glob("part-*.parquet"))) == 3
        tables.append(pd.read_parquet(out))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    drawn = tables[0]
    assert (drawn["shop"] == "south").all() and (drawn["load"] == 0.5).all()
    # drawn given the condition, as one process draws: not the amount's bimodal whole
    alone = FlowModel.load(str(conditional)).sample(5000, 1, {"shop": "south", "load": 0.5})
    assert abs(drawn["amount"].median() - alone["amount"].median()) < 0.2
    assert drawn["amount"].median() > 3.0


def test_sample_given_a_dataset_draws_per_row_whatever_the_workers(conditional,
                                                                    tmp_path) -> None:
    given = tmp_path / "given"
    for i in range(3):
        part = given / f"day={i}" / "p.parquet"
        part.parent.mkdir(parents=True)
        _shops(40, seed=i + 1).assign(note="unused").to_parquet(part, index=False)
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        done = cli("sample", conditional, "--given", given, "-n", 3, "--seed", 2,
                   "-o", f"{out}/", "--workers", workers, "-q")
        assert done.returncode == 0, done.stderr
        outs.append({p.relative_to(out): pd.read_parquet(p) for p in out.rglob("*.parquet")})
    assert sorted(outs[0]) == sorted(outs[1]) == [Path(f"day={i}/p.parquet") for i in range(3)]
    for part, drawn in outs[0].items():
        pd.testing.assert_frame_equal(drawn, outs[1][part])
        conditions = pd.read_parquet(given / part)
        assert len(drawn) == 3 * len(conditions)
        assert drawn["shop"].tolist() == np.repeat(conditions["shop"], 3).tolist()
    drawn = pd.concat(outs[0].values())
    assert drawn.query("shop == 'south'")["amount"].median() > 3.0
    assert drawn.query("shop == 'north'")["amount"].median() < -3.0


def test_a_workers_warning_reaches_the_user_once(conditional, tmp_path) -> None:
    given = tmp_path / "given"
    given.mkdir()
    for i in range(2):
        pd.DataFrame({"shop": ["north"] * 5, "load": [40.0] * 5}).to_parquet(
            given / f"p{i}.parquet", index=False)
    done = cli("sample", conditional, "--given", given, "-o", f"{tmp_path}/out/",
               "--workers", "2")
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert err.count("outside its training range") == 2, err  # one per file, each named
    assert "p0.parquet" in err and "p1.parquet" in err
    done = cli("sample", conditional, "--given", "shop=north", "--given", "load=40",
               "-o", f"{tmp_path}/pairs/", "--workers", "2")  # -n: 1 row, as in one process
    err = done.stderr.decode()
    assert done.returncode == 0 and err.count("outside its training range") == 1, err
    assert f"wrote 1 rows to {tmp_path}/pairs/" in err, err


def test_sample_given_on_a_cluster_is_checked_before_it_starts(model, conditional,
                                                               tmp_path) -> None:
    for args, needle in [((model, "--given", "kind=x"), "not a condition of this model"),
                         ((model, "--given", tmp_path), "not conditional"),
                         ((conditional, "--given", "shop=east", "--given", "load=0"), "'east'"),
                         ((conditional, "--given", "-"), "stdin")]:
        done = cli("sample", *args, "-n", 5, "-o", f"{tmp_path}/out/", "--workers", "2")
        err = done.stderr.decode()
        assert done.returncode != 0 and err.count("\n") == 1 and needle in err, err
        assert not (tmp_path / "out").exists()


def test_the_python_entry_samples_given_a_condition(conditional) -> None:
    drawn = flowcli_dask.sample(conditional, 2500, seed=1, partition_rows=1000,
                                given={"shop": "north", "load": 0.0})
    assert list(drawn.columns) == list(drawn.compute(scheduler="sync").columns)
    rows = drawn.compute(scheduler="sync")
    assert len(rows) == 2500 and (rows["shop"] == "north").all()
    assert rows["amount"].median() < -3.0

def test_the_python_entry_checks_the_condition_before_any_task(model, conditional) -> None:
    with pytest.raises(SchemaError, match="not a condition of this model"):
        flowcli_dask.sample(model, 10, given={"kind": "x"})
    with pytest.raises(UsageError, match="is needed: this model is conditional"):
        flowcli_dask.sample(conditional, 10)
