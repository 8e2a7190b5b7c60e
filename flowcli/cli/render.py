"""What the command line prints on stderr (and ``info`` on stdout): the progress of a fit,
the table of columns, and the summary of a model that ``fit`` and ``info`` share."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from ..model import FlowModel
    from ..training import EpochReport

__all__ = ["Progress", "columns_table", "console", "model_summary", "say"]


LOG_WIDTH = 120  # columns of a summary written to a file or a pipe, where lines may be long


def console(quiet: bool = False, stderr: bool = True) -> Console:
    """A console for messages; on a terminal its width, elsewhere ``LOG_WIDTH``."""
    from rich.console import Console

    out = Console(stderr=stderr, quiet=quiet, highlight=False, soft_wrap=True)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = LOG_WIDTH
    return out


class Progress:
    """Epoch progress on stderr: a Rich bar on a terminal, a line every 10 s otherwise."""

    def __init__(self, out: Console, epochs: int, enabled: bool) -> None:
        self.out = out
        self.enabled = enabled
        self.live = enabled and out.is_terminal
        self.last = 0.0
        self.bar: Any = None
        if self.live:
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(
                TextColumn("epoch {task.completed:>4.0f}"), BarColumn(),
                TextColumn("{task.fields[text]}"), TimeElapsedColumn(),
                console=out, transient=True,
            )
            self.task = self.bar.add_task("fit", total=epochs, text="")
            self.bar.start()

    def __call__(self, r: EpochReport) -> None:
        text = (f"train {r.train_ll:8.3f}  val {r.val_ll:8.3f}  best {r.best_val_ll:8.3f} "
                f"(epoch {r.best_epoch})  {r.rows_per_second:,.0f} rows/s")
        if r.stage:
            text = f"{r.stage}: {text}"
        if r.note:
            self.out.print(f"epoch {r.epoch}: {r.note}")
        if self.live:
            self.bar.update(self.task, completed=r.epoch, text=text)
        elif self.enabled and time.monotonic() - self.last > 10:
            self.last = time.monotonic()
            self.out.print(f"epoch {r.epoch}: {text}")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def say(message: str) -> None:
    """A message on stderr (the callers are quiet by not calling it)."""
    console().print(message)


def columns_table(model: FlowModel, title: str, **style: Any) -> Table:
    """The column / kind / dtype / seen-in-training table of ``fit`` and ``info``."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", **style)
    for name in ("column", "kind", "dtype", "seen in training"):
        table.add_column(name)
    for spec in model.schema.columns:
        table.add_row(spec.name, spec.kind_label, spec.dtype, spec.describe())
    return table


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _flow_note(m: dict[str, Any]) -> str:
    """What reads after the flow's description: its heavy-tail layer, if any, and its base
    (nothing for the standard normal)."""
    note = ""
    if m.get("tails"):
        note = f", heavy tails pulled in on {_plural(len(m['tails_columns']), 'column')}"
    k = int(m.get("mixture", 0))
    moving = " that moves with the condition" if m.get("base_context") else ""
    return note + (f", on a mixture of {_plural(k, 'Gaussian')}{moving}" if k else "")


def _networks(m: dict[str, Any], detailed: bool) -> str:
    """The size of the flow's networks, as its description shows it: nothing for an unmix
    flow without a context, which has none."""
    if m["kind"] == "unmix" and not m.get("context_features"):
        return ""
    return f", {m['depth']} x {m['hidden']} hidden" if detailed else f" x {m['hidden']} hidden"


def _flow_line(m: dict[str, Any], detailed: bool) -> str:
    if not detailed:
        return (f"{m['kind']}, {m['layers']} layers{_networks(m, False)}, "
                f"{m['parameters']:,} parameters{_flow_note(m)}")
    shape = (f"{m['bins']} spline bins on [-{m['bound']:g}, {m['bound']:g}]" if "bins" in m
             else f"log-scale bound {m['scale_bound']:g}")
    return f"{m['kind']}: {m['layers']} layers{_networks(m, True)}, {shape}{_flow_note(m)}"


def model_summary(model: FlowModel, path: str, detailed: bool) -> Table:
    """The summary of ``fit`` (``detailed=False``, after training) and of ``info``."""
    from rich.table import Table

    t, info = model.training, model.info()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    if detailed:
        _info_rows(table, model, info["model"])
    else:
        _fit_rows(table, model, info["model"], path)
    if model.schema.given:
        table.add_row("given", f"{', '.join(model.schema.given)} (scores are log p(others | "
                               f"these); sample needs --given)")
    for c in model.tried:
        speed = f", scores {c.score_rows_per_second:,.0f} rows/s" \
            if c.score_rows_per_second else ""  # unknown in files written before
        table.add_row(f"tried {c.label}",
                      f"{c.val_log_likelihood:.4f} nats/row, {_plural(c.epochs, 'epoch')} "
                      f"({c.stopped}), {c.seconds:.1f} s{speed}" + (", kept" if c.kept else ""))
    table.add_row("epochs", f"{t['epochs']} (best {t['best_epoch']}, stopped: {t['stopped']})")
    table.add_row(f"{t['held_out']} log-likelihood", f"{t['val_log_likelihood']:.4f} nats/row")
    ranked = f" x {t['ranks']} ranks (torchrun)" if t.get("ranks") else ""
    table.add_row("time", f"{t['seconds']:.1f} s on {t['device']}{ranked}")
    if detailed:
        v = info["versions"]
        table.add_row("created", model.created)
        table.add_row("versions", f"flowcli {v['flowcli']}, torch {v['torch']}, "
                                  f"model format {v['format']}")
    return table


def _fit_rows(table: Table, model: FlowModel, m: dict[str, Any], path: str) -> None:
    t = model.training
    rows = f"{t['train_rows']:,} train, {t['val_rows']:,} validation"
    if t.get("dropped_rows"):
        rows += f" ({t['dropped_rows']:,} rows with gaps dropped)"
    table.add_row("model file", path)
    table.add_row("rows", rows)
    table.add_row("flow", _flow_line(m, detailed=False))


def _info_rows(table: Table, model: FlowModel, m: dict[str, Any]) -> None:
    t = model.training
    table.add_row("flow", _flow_line(m, detailed=True))
    categories = m["categorical_variables"]
    if categories:
        table.add_row("categories", f"{categories} categorical variables "
                                    f"(exact probabilities; the flow is conditioned on them)")
    table.add_row("parameters", f"{m['parameters']:,}")
    sampled = f", a uniform sample of {t['sampled_from']:,}" if "sampled_from" in t else ""
    table.add_row("trained on", f"{t['rows']:,} rows ({t['train_rows']:,} train, "
                                f"{t['val_rows']:,} validation{sampled}), seed {t['seed']}")
    if "sample_rows" in t:
        table.add_row("read in shares", f"one per rank; columns, encoding and held-out "
                                        f"figures from a sample of {t['sample_rows']:,} rows")
