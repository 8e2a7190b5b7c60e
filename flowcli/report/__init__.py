"""``flowcli report``: one page on how good a model and its synthetic rows are.

:mod:`.figures` computes the numbers (also written as JSON for scripts), :mod:`.plots` draws
them with matplotlib, and :mod:`.page` lays both out as one self-contained HTML file;
:mod:`.build` ties them together for files (``write_report``) and for tables in memory
(``build_report``, the notebook entry).
"""

from .build import build_report, write_report

__all__ = ["build_report", "write_report"]
