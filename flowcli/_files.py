"""File helpers shared by the data writer and the model file, with no heavy imports."""

from __future__ import annotations

import os

__all__ = ["default_file_mode"]


def default_file_mode(path: str) -> None:
    """Give a temporary file the mode a new file gets (mkstemp makes it owner-only)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
