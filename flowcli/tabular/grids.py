"""Regular grids in float columns: values that sit on ``offset + step * k``.

Tables often hold codes, counts or standardized integers as floats, and many were written
with a fixed number of decimals or of significant digits, so their values sit on a grid only
up to that rounding (``(k - mean) / sd`` written as ``-27.201`` and ``8.7988``). A continuous
density piles ever more mass onto such points, so a column found on a grid is modelled as the
index ``k`` of its point. A grid is looked for exactly first, then up to the precision the
values carry; one found up to rounding is kept only when it gives back every recorded value
exactly once rounded to that precision, and when values placed at random would rarely fit
one as well: its samples are written to that precision, and a scored value must be recorded
to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FLOAT32_DTYPES", "Grid", "Precision", "find_grid"]

GRID_POINTS = 1000  # a grid has at most this many distinct values ...
GRID_REPEATS = 20  # ... each seen at least this many times on average (evidence of a grid)
GRID_SPAN = 20  # and spans at most this many steps per value
# a value lies on an exact grid when its index is within this of a whole number
EXACT = 1e-6
# a grid found up to rounding is kept when values placed at random would fit one this well
# with at most this chance: (2 half units / step) per value beyond the two that fix it
CHANCE = 1e-3
# values with more significant digits than these (as float64, as float32) were computed,
# not written rounded
DIGITS_WRITTEN, DIGITS_WRITTEN_FLOAT32 = 15, 7
# a value is as recorded when within this share of half its last unit of a grid point
AS_RECORDED = 1e-6
# a float32 value may differ from the decimal it was written as by this share of itself
FLOAT32_ERROR = float(np.finfo(np.float32).eps)
# values this small against the column's largest are zeros left by float arithmetic
ZERO = 1e-12
# exact powers of ten end here, and with them exact rounding to decimal places
EXACT_POWERS = 22
# pandas dtypes (as the schema writes them) that hold float32 values
FLOAT32_DTYPES = ("float32", "Float32", "float[pyarrow]")


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
            rounded = np.where(places >= 0, np.round(x * scale) / scale,
                               np.round(x / scale) * scale)
        return rounded + 0.0  # no -0.0


@dataclass(frozen=True)
class Grid:
    """Values ``offset + step * k``; ``precision`` is None for a grid that holds its values
    exactly, else the rounding they were written with; ``float32``: the values are stored
    as float32, so each may be off by its rounding to that width."""

    step: float
    offset: float
    precision: Precision | None = None
    float32: bool = False

    def point(self, k: np.ndarray) -> np.ndarray:
        """The value of grid point ``k``, as recorded."""
        value = self.offset + k * self.step
        return value if self.precision is None else self.precision.round(value)

    def index(self, x: np.ndarray) -> np.ndarray:
        """The nearest grid point's index to each value."""
        return np.round((x - self.offset) / self.step)

    def holds(self, x: np.ndarray) -> np.ndarray:
        """Whether each value is a grid point (as recorded, for a rounded grid; where the
        precision's last unit is as coarse as the step, no value is)."""
        width = FLOAT32_ERROR * np.abs(x) if self.float32 else 0.0
        if self.precision is None:
            k = (x - self.offset) / self.step
            return np.abs(k - np.round(k)) <= EXACT + width / self.step
        half = self.precision.half_unit(x)
        near = np.abs(x - self.point(self.index(x))) <= AS_RECORDED * half + width
        return near & (half < 0.5 * self.step)


def find_grid(points: np.ndarray, rows: int, float32: bool = False) -> Grid | None:
    """The grid of a float column with distinct sorted values ``points`` in ``rows`` rows
    (stored as float32 when ``float32``), or None: at most ``GRID_POINTS`` values, seen
    ``GRID_REPEATS`` times each on average, spanning at most ``GRID_SPAN`` steps per value;
    exact (floats such as ``0.1 * 3``), else up to the values' rounding."""
    if not 2 <= len(points) <= GRID_POINTS or rows < GRID_REPEATS * len(points):
        return None
    if float32:  # the decimals the float32 values stand for
        points = np.array([float(_shortest(np.float32(v))) for v in points])
    points = np.unique(np.where(np.abs(points) <= ZERO * np.abs(points).max(), 0.0, points))
    if len(points) < 2:
        return None
    return _exact_grid(points, float32) or _rounded_grid(points, float32)


def _indices(points: np.ndarray, unit: float) -> np.ndarray | None:
    """Each value's grid index from the first, for values each rounded by up to ``unit``
    (whole one-step gaps differ by up to twice that), or None past ``GRID_SPAN``."""
    gaps = np.diff(points)
    one_step = gaps[gaps <= max(1.5 * gaps.min(), gaps.min() + 2.0 * unit)]
    span = float(points[-1] - points[0])
    steps = round(span / float(one_step.mean()))  # the rounding of one gap averaged out
    if steps > GRID_SPAN * len(points):
        return None
    k = np.round((points - points[0]) / (span / steps))
    return k if len(np.unique(k)) == len(k) else None


def _exact_grid(points: np.ndarray, float32: bool) -> Grid | None:
    """The grid of the least gap from the first value, when it holds every value."""
    if _indices(points, 0.0) is None:  # past the span, or two values on one point
        return None
    grid = Grid(float(np.diff(points).min()), float(points[0]), float32=float32)
    return grid if grid.holds(points).all() else None


def _rounded_grid(points: np.ndarray, float32: bool) -> Grid | None:
    """The grid whose points, rounded to the values' precision, are the values."""
    precision = Precision.of(points)
    digits = DIGITS_WRITTEN_FLOAT32 if float32 else DIGITS_WRITTEN
    if precision.digits > digits or np.abs(precision.places(points)).max() > EXACT_POWERS:
        return None  # computed values, or past exact decimal rounding
    slack = precision.half_unit(points)
    unit = 2.0 * float(slack.max())  # the widest a value's rounding can move it
    k = _indices(points, unit)
    if k is None:
        return None
    step, offset = _widest_fit(points, k, slack)
    grid = Grid(step, offset, precision, float32)
    chance = (unit / step) ** (len(points) - 2)
    kept = chance <= CHANCE and np.array_equal(grid.index(points), k) and \
        bool(grid.holds(points).all())
    return grid if kept else None


def _widest_fit(points: np.ndarray, k: np.ndarray, slack: np.ndarray) -> tuple[float, float]:
    """``(step, offset)`` leaving each ``points[i]`` the most room inside
    ``points[i] +- slack[i]`` at ``offset + step * k[i]``: the widest miss of those bounds
    is convex in the step, so a ternary search finds it."""
    low, high = points - slack, points + slack

    def miss(step: float) -> float:
        return float((low - step * k).max() - (high - step * k).min())

    guess, reach = (points[-1] - points[0]) / k[-1], 4.0 * slack.max() / k[-1]
    left, right = guess - reach, guess + reach
    for _ in range(100):
        third = (right - left) / 3.0
        if miss(left + third) < miss(right - third):
            right -= third
        else:
            left += third
    step = 0.5 * (left + right)
    return float(step), 0.5 * float((low - step * k).max() + (high - step * k).min())


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
