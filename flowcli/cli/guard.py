"""How the command line ends: expected failures as one ``error: ...`` line and an exit code.

Exit codes: 0 done; 1 an expected failure (bad input, damaged model file, unwritable output);
2 a usage error; 3 ``score --fail-on-anomaly`` flagged rows; 130 Ctrl-C; 141 the reader of
stdout went away; 143 SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import NoReturn

import typer

from ..errors import FlowcliError, FlowcliWarning
from .options import spell

__all__ = ["Terminated", "fail", "guard", "reraise_interrupt", "sigterm_waits", "signalled",
           "signals_noted", "warnings_as_lines"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt so that training stops the same way."""


_signals: list[int] = []  # the signals that arrived during the command
_interrupted: list[int] = []  # those of them that interrupted the work where it stood


def _on_signal(signum: int, frame: object) -> NoReturn:
    _signals.append(signum)
    _interrupted.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _caught() -> list[int]:
    """SIGTERM, and SIGINT unless the command was started with it ignored (in the
    background of a shell)."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    return [signal.SIGTERM] if ignored else [signal.SIGTERM, signal.SIGINT]


def fail(message: str, code: int = 1) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def signalled() -> bool:
    """Whether SIGTERM or Ctrl-C arrived during the command."""
    return bool(_signals)


def reraise_interrupt() -> NoReturn:
    """End the command as the signal that interrupted its work would have."""
    raise Terminated() if signal.SIGTERM in _signals else KeyboardInterrupt()


@contextlib.contextmanager
def sigterm_waits() -> Iterator[None]:
    """SIGTERM waits until the block is done (a model file being saved)."""
    handler = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def signals_noted(note: Callable[[], None]) -> Iterator[None]:
    """In the block, SIGTERM and Ctrl-C call ``note`` instead of interrupting: the work
    stops at a point of its own choosing (training under torchrun, where every rank must
    stop at the same step)."""
    def noted(signum: int, frame: object) -> None:
        _signals.append(signum)
        note()

    previous = {s: signal.signal(s, noted) for s in _caught()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def warnings_as_lines(quiet: bool) -> Iterator[None]:
    """The library's warnings to the user as one ``warning: ...`` line each, once per
    message (a stream of chunks warns once, not per chunk); none when ``quiet``."""
    shown: set[str] = set()

    def show(message: Warning | str, *_: object, **__: object) -> None:
        if str(message) not in shown:
            shown.add(str(message))
            sys.stderr.write(f"warning: {message}\n")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if quiet else "always", FlowcliWarning)
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def guard(quiet: bool = False) -> Iterator[None]:
    """Map expected failures to one stderr line and an exit code, and the library's warnings
    to one line each (none when ``quiet``).

    SIGTERM is turned into an interrupt for the command's duration, so that a partly written
    output file is removed and a fit saves its best model, as on Ctrl-C. Both are recorded:
    a reader that turns the interrupt into an error of its own (pandas' CSV parser, stopped
    in a read) still ends the command as interrupted, not as bad input. A signal only noted
    (:func:`signals_noted`, under torchrun) interrupts nothing, so an error after it stands:
    torchrun signals the other ranks when one dies, at times before they find it gone.
    """
    _signals.clear()
    _interrupted.clear()
    previous = {s: signal.signal(s, _on_signal) for s in _caught()}
    try:
        with warnings_as_lines(quiet):
            yield
    except FlowcliError as exc:
        if _interrupted:
            _end_interrupted()
        fail(exc.render(spell), exc.exit_code)
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, as a tool killed by SIGPIPE would
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(141) from None
    except KeyboardInterrupt:
        _end_interrupted()
    except MemoryError:
        fail("out of memory; use a smaller --batch-size")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _end_interrupted() -> NoReturn:
    """Exit as the signal that interrupted the command: 143 for SIGTERM, 130 for Ctrl-C."""
    if signal.SIGTERM in _signals:
        sys.stderr.write("terminated\n")
        raise typer.Exit(143) from None
    sys.stderr.write("interrupted\n")
    raise typer.Exit(130) from None
