"""The ``flowcli`` command line: parses options, calls :mod:`flowcli.api`, prints.

Data goes to stdout, messages to stderr. Expected failures print one ``error: ...`` line and
exit 1 (2 for usage errors, 3 for ``score --fail-on-anomaly``); Ctrl-C exits 130, SIGTERM 143.
Heavy modules (torch, pandas) load inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from . import __version__
from .errors import FlowcliError

if TYPE_CHECKING:
    from rich.console import Console

    from .api import FlowModel
    from .train import EpochReport

__all__ = ["app", "main"]

app = typer.Typer(
    name="flowcli",
    help="Density estimation on tables with normalizing flows: fit, sample, score, invert.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class ModelKind(str, Enum):
    auto = "auto"
    maf = "maf"
    realnvp = "realnvp"
    nsf = "nsf"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Missing(str, Enum):
    error = "error"
    drop = "drop"
    model = "model"


class Unseen(str, Enum):
    error = "error"
    floor = "floor"


class Format(str, Enum):
    csv = "csv"
    parquet = "parquet"


# ---------------------------------------------------------------- shared options
ModelPath = Annotated[str, typer.Argument(metavar="MODEL", help="A model file written by 'fit'.")]
DataPath = Annotated[str, typer.Argument(
    metavar="DATA", help="A CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) table; '-' for stdin.")]
OutputOpt = Annotated[str, typer.Option(
    "--output", "-o", metavar="OUT",
    help="Output table; the format follows the extension. Default '-': CSV on stdout.")]
InputFormatOpt = Annotated[Format | None, typer.Option(
    "--format", help="Format of the input table, when the extension does not tell (stdin).")]
OutputFormatOpt = Annotated[Format | None, typer.Option(
    "--output-format", help="Format of the output, overriding the extension of -o.")]
DeviceOpt = Annotated[Device, typer.Option(
    "--device", help="Where to compute: auto picks CUDA when available.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed, for reproducible runs.")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print nothing on stderr but errors.")]
BatchOpt = Annotated[int, typer.Option(
    "--batch-size", min=1, help="Rows per chunk read, computed and written.")]

F = TypeVar("F", bound=Callable[..., Any])


class _Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt so that training stops the same way."""


_signals: list[int] = []


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    _signals.append(signum)
    raise _Terminated()


def _stderr(quiet: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=True, quiet=quiet, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    """Map expected failures to one stderr line and an exit code.

    SIGTERM is turned into an interrupt for the command's duration, so that a partly written
    output file is removed and a fit saves its best model, as on Ctrl-C.
    """
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    except FlowcliError as exc:
        _fail(str(exc), exc.exit_code)
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, as a tool killed by SIGPIPE would
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(141) from None
    except _Terminated:
        sys.stderr.write("terminated\n")
        raise typer.Exit(143) from None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise typer.Exit(130) from None
    except MemoryError:
        _fail("out of memory; use a smaller --batch-size")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fmt(value: Format | None) -> str | None:
    return value.value if value is not None else None


def _load(path: str, device: Device) -> FlowModel:
    from .api import FlowModel

    return FlowModel.load(path, device.value)


# ---------------------------------------------------------------- fit
class _Progress:
    """Epoch progress on stderr: a Rich bar on a terminal, a line every 10 s otherwise."""

    def __init__(self, console: Console, epochs: int, enabled: bool) -> None:
        self.console = console
        self.enabled = enabled
        self.live = enabled and console.is_terminal
        self.last = 0.0
        self.bar: Any = None
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("epoch {task.completed:>4.0f}"), BarColumn(),
                TextColumn("{task.fields[text]}"), TimeElapsedColumn(),
                console=console, transient=True,
            )
            self.task = self.bar.add_task("fit", total=epochs, text="")
            self.bar.start()

    def __call__(self, r: EpochReport) -> None:
        text = (f"train {r.train_ll:8.3f}  val {r.val_ll:8.3f}  best {r.best_val_ll:8.3f} "
                f"(epoch {r.best_epoch})  {r.rows_per_second:,.0f} rows/s")
        if r.stage:
            text = f"{r.stage}: {text}"
        if r.note:
            self.console.print(f"epoch {r.epoch}: {r.note}")
        if self.live:
            self.bar.update(self.task, completed=r.epoch, text=text)
        elif self.enabled and time.monotonic() - self.last > 10:
            self.last = time.monotonic()
            self.console.print(f"epoch {r.epoch}: {text}")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _split_names(value: str | None, option: str) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise typer.BadParameter("give at least one column name", param_hint=option)
    return names


def _parse_bounds(value: str | None) -> dict[str, tuple[float, float]]:
    out = {}
    for item in _split_names(value, "--bounds") or []:
        name, _, rng = item.rpartition("=")
        low, _, high = rng.partition(":")
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            lo = hi = float("nan")
        if not name or not lo < hi:
            raise typer.BadParameter(f"expected COLUMN=LOW:HIGH with LOW < HIGH, got {item!r}",
                                     param_hint="--bounds")
        out[name] = (lo, hi)
    return out


def _exclude(names: list[str], excluded: list[str], source: str) -> list[str]:
    unknown = [n for n in excluded if n not in names]
    if unknown:
        from .errors import SchemaError

        raise SchemaError(f"{source}: --exclude names no column {', '.join(map(repr, unknown))}")
    return [n for n in names if n not in excluded]


@app.command()
def fit(
    data: DataPath,
    output: Annotated[str, typer.Option("--output", "-o", metavar="MODEL",
                                        help="Where to write the model file.")],
    model: Annotated[ModelKind, typer.Option(
        "--model", help="auto: fit maf and nsf (and maf on a mixture base when a mixture "
        "leads), keep the best on the validation rows; "
        "maf: affine autoregressive, fastest to fit; realnvp: one pass both ways, fastest "
        "to sample; nsf: spline autoregressive, for skewed, bounded or multi-modal columns.")
    ] = ModelKind.auto,
    whiten: Annotated[bool | None, typer.Option(
        "--whiten/--no-whiten", show_default="off; auto also tries it under 1,000 rows",
        help="Start the flow at the data's full-covariance Gaussian (helps small, smooth, "
        "correlated tables; hurts lattice-valued ones).")] = None,
    mixture: Annotated[bool | None, typer.Option(
        "--mixture/--no-mixture", show_default="off; auto also tries it when a mixture leads",
        help="Put the flow on a Gaussian-mixture base fitted by EM, its size chosen on the "
        "validation rows (MAF-MoG: helps clustered tables and lattice-valued columns; the "
        "latent rows of invert then follow that mixture, not N(0, I)).")] = None,
    tails: Annotated[bool | None, typer.Option(
        "--tails/--no-tails", show_default="on for nsf, off for maf and realnvp",
        help="Start the flow with a fixed per-column asinh layer that pulls heavy tails in, "
        "fitted to each column that it makes closer to Gaussian.")] = None,
    layers: Annotated[int | None, typer.Option(
        min=1, show_default="5, or 3 under 1,000 rows", help="Number of flow layers.")] = None,
    hidden: Annotated[int | None, typer.Option(
        min=1, show_default="128, or 32 under 1,000 rows",
        help="Hidden units per network layer.")] = None,
    epochs: Annotated[int | None, typer.Option(
        min=1, show_default="1000", help="Most passes over the data (counted across resumes).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per step.")] = 512,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = 1e-3,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", min=0.0, max=0.9, help="Share of rows held out for early stopping.")
    ] = 0.1,
    patience: Annotated[int | None, typer.Option(
        min=1, show_default="20",
        help="Stop after this many epochs without a better validation score.")] = None,
    max_time: Annotated[float | None, typer.Option(
        "--max-time", min=0.0, help="Stop training after this many seconds.")] = None,
    resume: Annotated[str | None, typer.Option(
        "--resume", metavar="MODEL",
        help="Carry on training this model file on the same DATA (epochs, early stopping and "
             "optimizer state continue; architecture options are taken from it).")] = None,
    columns: Annotated[str | None, typer.Option(
        "--columns", help="Comma-separated columns to model (default: all).")] = None,
    exclude: Annotated[str | None, typer.Option(
        "--exclude", help="Comma-separated columns to leave out.")] = None,
    categorical: Annotated[str | None, typer.Option(
        "--categorical", help="Columns to model as categories (e.g. integer codes).")] = None,
    integer: Annotated[str | None, typer.Option(
        "--integer", help="Columns to model as integers (counts, ordinals).")] = None,
    positive: Annotated[str | None, typer.Option(
        "--positive", help="Columns that are > 0 (amounts): modelled on a log scale.")] = None,
    bounds: Annotated[str | None, typer.Option(
        "--bounds", metavar="COL=LO:HI,...",
        help="Columns bounded to [LO, HI] (rates): modelled on a logit scale.")] = None,
    missing: Annotated[Missing, typer.Option(
        "--missing", help="Rows with gaps: error, drop them, or model the gaps.")
    ] = Missing.error,
    fmt: InputFormatOpt = None,
    device: DeviceOpt = Device.auto,
    seed: SeedOpt = None,
    quiet: QuietOpt = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Learn the density of a table and write a model file."""
    console = _stderr(quiet)
    with _guard():
        from .api import FitConfig, FlowModel
        from .checkpoint import check_target
        from .io import display_name, read_table
        from .tabular import Overrides

        check_target(output)
        names = _split_names(columns, "--columns")
        overrides = Overrides(categorical=set(_split_names(categorical, "--categorical") or []),
                              integer=set(_split_names(integer, "--integer") or []),
                              positive=set(_split_names(positive, "--positive") or []),
                              bounds=_parse_bounds(bounds))
        stop = {k: v for k, v in (("epochs", epochs), ("patience", patience),
                                  ("max_seconds", max_time)) if v is not None}
        previous_model = _load(resume, device) if resume is not None else None
        df = read_table(data, _fmt(fmt))
        if exclude is not None:
            names = _exclude(names or [str(c) for c in df.columns],
                             _split_names(exclude, "--exclude") or [], display_name(data))
        config = previous_model.fit_config if previous_model is not None else FitConfig()
        progress = _Progress(console, epochs or config.epochs, enabled=not quiet)
        try:
            if previous_model is not None:
                fitted = previous_model.resume_fit(df, callback=progress,
                                                   source=display_name(data), **stop)
            else:
                fitted = FlowModel.fit(
                    df, model=model.value, whiten=whiten, mixture=mixture, tails=tails,
                    layers=layers,
                    hidden=hidden,
                    batch_size=batch_size,
                    lr=lr, val_fraction=val_fraction, missing=missing.value, columns=names,
                    overrides=overrides, seed=seed, device=device.value, callback=progress,
                    source=display_name(data), **stop,
                )
        finally:
            progress.stop()
        # a signal during the save must not leave a half-written file: the save is atomic,
        # and SIGTERM waits until it is done
        handler = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        fitted.save(output)
        signal.signal(signal.SIGTERM, handler)
        info = fitted.info()
        if as_json:
            sys.stdout.write(json.dumps({"model_file": output, **info}, indent=2) + "\n")
        if not quiet:
            _print_schema(console, fitted)
            _print_fit_summary(console, info, output)
        if fitted.training.get("stopped") == "interrupted":
            raise _Terminated() if _signals else KeyboardInterrupt()


def _columns_table(specs: Any, title: str, **style: Any) -> Any:
    """The column / kind / dtype / seen-in-training table of ``fit`` and ``info``."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", **style)
    for name in ("column", "kind", "dtype", "seen in training"):
        table.add_column(name)
    for spec in specs:
        table.add_row(spec.name, spec.kind, spec.dtype, spec.describe())
    return table


def _print_schema(console: Console, fitted: FlowModel) -> None:
    console.print(_columns_table(fitted.schema.columns, "columns", box=None, pad_edge=False))
    for note in fitted.schema.warnings(fitted.training["rows"]):
        console.print(f"warning: {note}")


def _add_candidates(table: Any, training: dict[str, Any], model: dict[str, Any]) -> None:
    """One row per flow that ``--model auto`` tried (validation log-likelihood, epochs, why
    it stopped, seconds), the kept one marked."""
    from .api import label

    for c in training.get("candidates", []):
        kept = ((c["model"], c["whiten"], c.get("mixture", 0), c.get("tails", False))
                == (model["kind"], model.get("whiten", False), model.get("mixture", 0),
                    model.get("tails", False)))
        name = label(c["model"], c["whiten"], bool(c.get("mixture", 0)), c.get("tails", False))
        table.add_row(f"tried {name}", f"{c['val_log_likelihood']:.4f} nats/row, "
                                       f"{c['epochs']} epoch{'' if c['epochs'] == 1 else 's'} "
                                       f"({c['stopped']}), "
                                       f"{c['seconds']:.1f} s" + (", kept" if kept else ""))


def _flow_note(model: dict[str, Any]) -> str:
    """What reads after the flow's description: its heavy-tail layer, if any, and its base
    (nothing for the standard normal)."""
    k = model.get("mixture", 0)
    note = ""
    if model.get("tails"):
        n = len(model["tails_columns"])
        note = f", heavy tails pulled in on {n} column{'' if n == 1 else 's'}"
    return note + (f", on a mixture of {k} Gaussian{'s' if k > 1 else ''}" if k else "")


def _print_fit_summary(console: Console, info: dict[str, Any], output: str) -> None:
    from rich.table import Table

    t = info["training"]
    m = info["model"]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("model file", output)
    rows = f"{t['train_rows']:,} train, {t['val_rows']:,} validation"
    if t.get("dropped_rows"):
        rows += f" ({t['dropped_rows']:,} rows with gaps dropped)"
    table.add_row("rows", rows)
    table.add_row("flow", f"{m['kind']}, {m['layers']} layers x {m['hidden']} hidden, "
                          f"{m['parameters']:,} parameters{_flow_note(m)}")
    _add_candidates(table, t, m)
    table.add_row("epochs", f"{t['epochs']} (best {t['best_epoch']}, stopped: {t['stopped']})")
    table.add_row(f"{t['held_out']} log-likelihood", f"{t['val_log_likelihood']:.4f} nats/row")
    table.add_row("time", f"{t['seconds']:.1f} s on {t['device']}")
    console.print(table)


# ---------------------------------------------------------------- sample
@app.command()
def sample(
    model: ModelPath,
    n: Annotated[int, typer.Option("-n", "--rows", help="Number of rows to draw.")],
    output: OutputOpt = "-",
    output_format: OutputFormatOpt = None,
    seed: SeedOpt = None,
    batch_size: BatchOpt = 65536,
    device: DeviceOpt = Device.auto,
    quiet: QuietOpt = False,
) -> None:
    """Draw new rows with the training table's columns and dtypes."""
    if n < 0:
        raise typer.BadParameter(f"must be 0 or more, got {n}", param_hint="-n")
    with _guard():
        from .io import TableWriter

        fitted = _load(model, device)
        with TableWriter(output, _fmt(output_format)) as writer:
            for chunk in fitted.sample_batches(n, seed, batch_size):
                writer.write(chunk)
        if not quiet and output != "-":
            _stderr().print(f"wrote {writer.rows:,} rows to {output}")


# ---------------------------------------------------------------- score
@app.command()
def score(
    model: ModelPath,
    data: DataPath,
    output: OutputOpt = "-",
    percentile: Annotated[bool, typer.Option(
        "--percentile", help="Add 'percentile': the share (%) of held-out training rows that "
                             "scored lower.")] = False,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", min=0.0, max=1.0, metavar="Q",
        help="Add 'anomaly': true for rows scoring below the Q-quantile of held-out training "
             "rows (0.01 flags the least likely 1 % of typical data).")] = None,
    only_score: Annotated[bool, typer.Option(
        "--only-score", help="Write only the score columns, not the input rows.")] = False,
    unseen: Annotated[Unseen, typer.Option(
        "--unseen", help="A category never seen in training: an error, or score the row as "
                         "the rarest training category (floor).")] = Unseen.error,
    fail_on_anomaly: Annotated[bool, typer.Option(
        "--fail-on-anomaly", help="Exit with code 3 when any row is flagged (needs --threshold).")
    ] = False,
    fmt: InputFormatOpt = None,
    output_format: OutputFormatOpt = None,
    batch_size: BatchOpt = 65536,
    device: DeviceOpt = Device.auto,
    quiet: QuietOpt = False,
) -> None:
    """Append each row's log-likelihood (nats, in the table's own units) as 'log_prob'.

    Extra input columns pass through untouched; the model's columns must all be present.
    """
    if fail_on_anomaly and threshold is None:
        raise typer.BadParameter("needs --threshold Q", param_hint="--fail-on-anomaly")
    with _guard():
        from .errors import AnomalyError
        from .io import TableWriter, display_name, iter_tables

        fitted = _load(model, device)
        source = display_name(data)
        cutoff = fitted.threshold(threshold) if threshold is not None else None
        flagged = 0
        chunks = iter_tables(data, _fmt(fmt), batch_size)
        with TableWriter(output, _fmt(output_format)) as writer:
            for chunk, scores in fitted.score_batches(chunks, source, unseen.value):
                out = fitted.scored_table(chunk, scores, percentile=percentile, cutoff=cutoff,
                                          only_score=only_score)
                flagged += int(out["anomaly"].sum()) if cutoff is not None else 0
                writer.write(out)
        if not quiet and output != "-":
            _stderr().print(f"scored {writer.rows:,} rows into {output}")
        if cutoff is not None and (not quiet or fail_on_anomaly):
            _stderr().print(
                f"{flagged:,} of {writer.rows:,} rows flagged as anomalies "
                f"(log_prob below {cutoff:.4g}, the {threshold:g} quantile of held-out rows)")
        if fail_on_anomaly and flagged:
            raise AnomalyError(f"{flagged:,} anomalous rows in {source}")


# ---------------------------------------------------------------- invert
@app.command()
def invert(
    model: ModelPath,
    data: DataPath,
    output: OutputOpt = "-",
    to_data: Annotated[bool, typer.Option(
        "--to-data", help="Map latent rows (columns z_0, z_1, ...) back to table rows.")] = False,
    fmt: InputFormatOpt = None,
    output_format: OutputFormatOpt = None,
    batch_size: BatchOpt = 65536,
    device: DeviceOpt = Device.auto,
    quiet: QuietOpt = False,
) -> None:
    """Map table rows to latent coordinates z_0, z_1, ... (or back, with --to-data).

    Columns that are not the model's pass through untouched, after the mapped ones.
    """
    with _guard():
        from .io import TableWriter, display_name, iter_tables

        fitted = _load(model, device)
        source = display_name(data)
        chunks = iter_tables(data, _fmt(fmt), batch_size)
        with TableWriter(output, _fmt(output_format)) as writer:
            for out in fitted.invert_batches(chunks, to_data, source):
                writer.write(out)
        if not quiet and output != "-":
            _stderr().print(f"wrote {writer.rows:,} rows to {output}")


# ---------------------------------------------------------------- info
@app.command()
def info(
    model: ModelPath,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Describe a model file: columns, architecture, training and versions."""
    with _guard():
        data = _load(model, Device.cpu).info()
        if as_json:
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
            return
        _print_info(data, model)


def _print_info(data: dict[str, Any], path: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    from .tabular.schema import ColumnSpec

    fields = ColumnSpec.__dataclass_fields__  # the columns also carry their encoders' state
    specs = [ColumnSpec.from_dict({k: v for k, v in c.items() if k in fields})
             for c in data["columns"]]
    console.print(_columns_table(specs, f"{path}: {len(data['columns'])} columns"))
    m, t, v = data["model"], data["training"], data["versions"]
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(style="bold")
    summary.add_column()
    shape = (f"{m['bins']} spline bins on [-{m['bound']:g}, {m['bound']:g}]" if "bins" in m
             else f"log-scale bound {m['scale_bound']:g}")
    summary.add_row("flow", f"{m['kind']}: {m['layers']} layers, {m['depth']} x {m['hidden']} "
                            f"hidden, {shape}{_flow_note(m)}")
    if m["categorical_variables"]:
        summary.add_row("categories", f"{m['categorical_variables']} categorical variables "
                                      f"(exact probabilities; the flow is conditioned on them)")
    summary.add_row("parameters", f"{m['parameters']:,}")
    summary.add_row("trained on", f"{t['rows']:,} rows ({t['train_rows']:,} train, "
                                  f"{t['val_rows']:,} validation), seed {t['seed']}")
    _add_candidates(summary, t, m)
    summary.add_row("epochs", f"{t['epochs']} (best {t['best_epoch']}, stopped: {t['stopped']})")
    summary.add_row(f"{t['held_out']} log-likelihood", f"{t['val_log_likelihood']:.4f} nats/row")
    summary.add_row("time", f"{t['seconds']:.1f} s on {t['device']}")
    summary.add_row("created", data["created"])
    summary.add_row("versions", f"flowcli {v['flowcli']}, torch {v['torch']}, "
                                f"model format {v['format']}")
    console.print(summary)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"flowcli {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Density estimation on tables with normalizing flows: fit, sample, score, invert."""


def main() -> None:
    """Entry point: run the app, printing usage errors as one line."""
    from typer._click.exceptions import ClickException, UsageError

    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="flowcli", standalone_mode=False)
    except UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        sys.stderr.write(f"error: {exc.format_message()}{hint}\n")
        sys.exit(exc.exit_code)
    except ClickException as exc:
        sys.stderr.write(f"error: {exc.format_message()}\n")
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
