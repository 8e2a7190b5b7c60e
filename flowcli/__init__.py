"""flowcli: density estimation on tables with normalizing flows.

``import flowcli`` stays light; the library names load on first use::

    from flowcli import FlowModel
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["FitConfig", "FlowModel", "__version__"]

if TYPE_CHECKING:
    from .fitting import FitConfig
    from .model import FlowModel


def __getattr__(name: str) -> Any:
    if name == "FlowModel":
        from .model import FlowModel

        return FlowModel
    if name == "FitConfig":
        from .fitting import FitConfig

        return FitConfig
    raise AttributeError(f"module 'flowcli' has no attribute {name!r}")
