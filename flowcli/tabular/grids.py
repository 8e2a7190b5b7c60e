"""Regular grids in float columns: values that sit on ``offset + step * k``.

Tables often hold codes, counts or standardized integers as floats, and many were written
with a fixed number of decimals or of significant digits, so their values sit on a grid only
up to that rounding (``(k - mean) / sd`` written as ``-27.201`` and ``8.7988``). A continuous
density piles ever more mass onto such points, so a column found on a grid is modelled as the
index ``k`` of its point. The grid is searched for up to the precision the values carry, and
kept only when it gives back every recorded value exactly once rounded to that precision:
samples are written to it, and a scored value must be recorded to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GRID_POINTS", "GRID_REPEATS", "Grid", "Precision", "find_grid"]

GRID_POINTS = 1000  # a grid has at most this many distinct values ...
GRID_REPEATS = 20  # ... each seen at least this many times on average (evidence of a grid)
GRID_SPAN = 20  # and spans at most this many steps per value
# a value lies on an exact grid when its index is within this of a whole number
EXACT = 1e-6
# values with more significant digits than this (as float64, as float32) were computed, not
# written rounded
WRITTEN, WRITTEN_SINGLE = 15, 7
# a value is recorded to a precision when it is within this share of half its last unit
RECORDED = 1e-6
# a float32 value may differ from the decimal it was written as by this share of itself
SINGLE = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class Precision:
    """How a column's values were written: to at most ``decimals`` places and at most
    ``digits`` significant digits (``8.7988`` and ``-27.201`` have 5 digits; cents have 2
    decimals). A value is rounded to whichever of the two is coarser at its magnitude."""

    decimals: int
    digits: int

    @classmethod
    def of(cls, values: np.ndarray) -> Precision:
        """The finest precision among ``values``' shortest decimal forms."""
        forms = [_written(float(v)) for v in values]
        return cls(max(places for places, _ in forms), max(digits for _, digits in forms))

    def places(self, x: np.ndarray) -> np.ndarray:
        """The decimal places each value is written to (negative: tens, hundreds)."""
        size = np.abs(x)
        with np.errstate(divide="ignore"):
            magnitude = np.floor(np.log10(np.where(size > 0, size, 1.0)))
        by_digits = np.where(size > 0, self.digits - 1 - magnitude, self.decimals)
        return np.clip(np.minimum(self.decimals, by_digits), -300, 300)

    def half_unit(self, x: np.ndarray) -> np.ndarray:
        """Half the unit of each value's last place: how far rounding may have moved it."""
        return 0.5 * 10.0 ** -self.places(x)

    def round(self, x: np.ndarray) -> np.ndarray:
        """``x`` rounded to this precision (the nearest float to the decimal it writes)."""
        places = self.places(x)
        scale = 10.0 ** np.abs(places)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.where(places >= 0, np.round(x * scale) / scale,
                            np.round(x / scale) * scale)


@dataclass(frozen=True)
class Grid:
    """Values ``offset + step * k``; ``precision`` is None for a grid that holds its values
    exactly, else the rounding they were written with; ``single``: the values are stored as
    float32, so each may be off by its rounding to that width."""

    step: float
    offset: float
    precision: Precision | None = None
    single: bool = False

    def point(self, k: np.ndarray) -> np.ndarray:
        """The value of grid point ``k``, as recorded."""
        value = self.offset + k * self.step
        return value if self.precision is None else self.precision.round(value)

    def index(self, x: np.ndarray) -> np.ndarray:
        """The nearest grid point's index to each value."""
        return np.round((x - self.offset) / self.step)

    def holds(self, x: np.ndarray) -> np.ndarray:
        """Whether each value is a grid point (as recorded, for a rounded grid)."""
        width = SINGLE * np.abs(x) if self.single else 0.0
        if self.precision is None:
            k = (x - self.offset) / self.step
            return np.abs(k - np.round(k)) <= EXACT + width / self.step
        slack = RECORDED * self.precision.half_unit(x) + width
        return np.abs(x - self.point(self.index(x))) <= slack


def find_grid(points: np.ndarray, rows: int, single: bool = False) -> Grid | None:
    """The grid of a float column with distinct sorted values ``points`` in ``rows`` rows
    (stored as float32 when ``single``), or None: at most ``GRID_POINTS`` values, seen
    ``GRID_REPEATS`` times each on average, spanning at most ``GRID_SPAN`` steps per value,
    found first up to the values' rounding and else exactly (floats such as ``0.1 * 3``
    carry no rounding to find)."""
    if not 2 <= len(points) <= GRID_POINTS or rows < GRID_REPEATS * len(points):
        return None
    if single:  # the decimals the float32 values stand for
        points = np.array([float(_shortest(np.float32(v))) for v in points])
    gaps = np.diff(points)
    unit = float(gaps[gaps < 1.5 * gaps.min()].mean())  # one step, its rounding averaged out
    steps = round(float(points[-1] - points[0]) / unit)
    if steps > GRID_SPAN * len(points):
        return None
    k = np.round((points - points[0]) / ((points[-1] - points[0]) / steps))
    if len(np.unique(k)) < len(k):
        return None
    return _rounded_grid(points, k, single) or _exact_grid(points, single)


def _exact_grid(points: np.ndarray, single: bool) -> Grid | None:
    step = float(np.diff(points).min())
    grid = Grid(step, float(points[0]), single=single)
    return grid if grid.holds(points).all() else None


def _rounded_grid(points: np.ndarray, k: np.ndarray, single: bool) -> Grid | None:
    """The grid whose points, rounded to the values' precision, are the values: each value
    bounds its point to within half its last unit, and the step is searched for (the
    widest miss is convex in it) to leave every bound room."""
    precision = Precision.of(points)
    if precision.digits > (WRITTEN_SINGLE if single else WRITTEN):  # float arithmetic's
        return None
    slack = precision.half_unit(points)
    low, high = points - slack, points + slack

    def miss(step: float) -> float:
        return float((low - step * k).max() - (high - step * k).min())

    guess, reach = (points[-1] - points[0]) / k[-1], 4.0 * slack.max() / k[-1]
    left, right = guess - reach, guess + reach
    for _ in range(100):  # ternary search on a convex function
        third = (right - left) / 3.0
        if miss(left + third) < miss(right - third):
            right -= third
        else:
            left += third
    step = 0.5 * (left + right)
    offset = 0.5 * float((low - step * k).max() + (high - step * k).min())
    grid = Grid(float(step), offset, precision, single)
    kept = np.array_equal(grid.index(points), k) and grid.holds(points).all()
    return grid if kept else None


def _shortest(value: float | np.float32) -> str:
    """The shortest decimal that reads back as ``value`` (at its own width)."""
    return np.format_float_positional(value, unique=True, trim="-")


def _written(value: float) -> tuple[int, int]:
    """The decimal places and significant digits of ``value``'s shortest decimal form."""
    text = _shortest(value).lstrip("-")
    whole, _, fraction = text.partition(".")
    digits = (whole + fraction).lstrip("0")
    if not fraction:
        digits = digits.rstrip("0")  # 1500: two significant digits, not four
    return len(fraction), max(len(digits), 1)
