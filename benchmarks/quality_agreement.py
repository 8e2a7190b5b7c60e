"""flowcli's fidelity figures (``flowcli/quality.py``) against SDMetrics' on the same tables.

Usage (from the repository root)::

    python -m venv .venv-sdm && .venv-sdm/bin/pip install sdmetrics pyarrow
    python benchmarks/quality_agreement.py --sdmetrics-python .venv-sdm/bin/python

SDMetrics runs in an interpreter of its own: it pins an older pandas than flowcli's, so it
does not go into the ``bench`` extra. For each table (``sample_data/transactions.csv`` and
``sample_data/sensors.csv``, with gaps, labels and integers) a MAF is fitted for a few epochs
and as many rows are drawn; then every column's ``ks_complement`` / ``tv_complement`` and
every pair's ``correlation_similarity`` / ``contingency_similarity`` are computed by both
(``KSComplement``, ``TVComplement``, ``CorrelationSimilarity``, ``ContingencySimilarity``
with the number columns discretized) and the largest difference is printed; the issue asks
for at most 0.005.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from flowcli import FlowModel
from flowcli.quality import column_pairs, column_shapes

ROOT = Path(__file__).resolve().parent.parent
TABLES = {"transactions": ("transactions.csv", ["id"]), "sensors": ("sensors.csv", [])}

SDMETRICS = """
import itertools, json, sys
import pandas as pd
from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity
from sdmetrics.single_column import KSComplement, TVComplement
real, synthetic = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
numeric = json.loads(sys.argv[3])
out = {"shapes": {}, "pairs": {}}
for c in real.columns:
    metric = KSComplement if c in numeric else TVComplement
    out["shapes"][c] = metric.compute(real[c], synthetic[c])
for a, b in itertools.combinations(real.columns, 2):
    if a in numeric and b in numeric:
        score = CorrelationSimilarity.compute(real[[a, b]], synthetic[[a, b]])
    else:
        score = ContingencySimilarity.compute(
            real[[a, b]], synthetic[[a, b]],
            continuous_column_names=[x for x in (a, b) if x in numeric])
    out["pairs"][a + "|" + b] = score
print(json.dumps(out))
"""


def _ours(real: pd.DataFrame, synthetic: pd.DataFrame, numeric: list[str]) -> dict:
    return {"shapes": {c: s["score"] for c, s in column_shapes(real, synthetic, numeric).items()},
            "pairs": {"|".join(p): s["score"]
                      for p, s in column_pairs(real, synthetic, numeric).items()}}


def compare(name: str, python: str, folder: Path) -> float:
    file, drop = TABLES[name]
    real = pd.read_csv(ROOT / "sample_data" / file).drop(columns=drop)
    model = FlowModel.fit(real, model="maf", epochs=20, missing="model", seed=0)
    synthetic = model.sample(len(real), seed=1)
    numeric = [c.name for c in model.schema.columns if c.kind not in ("categorical", "boolean")]
    real.to_parquet(folder / f"{name}-real.parquet", index=False)
    synthetic.to_parquet(folder / f"{name}-synthetic.parquet", index=False)
    done = subprocess.run([python, "-c", SDMETRICS, str(folder / f"{name}-real.parquet"),
                           str(folder / f"{name}-synthetic.parquet"), json.dumps(numeric)],
                          capture_output=True, text=True, check=True)
    theirs, ours = json.loads(done.stdout), _ours(real, synthetic, numeric)
    worst = 0.0
    for part in ("shapes", "pairs"):
        for key, value in ours[part].items():
            worst = max(worst, abs(value - theirs[part][key]))
    print(f"{name}: {len(ours['shapes'])} columns, {len(ours['pairs'])} pairs, "
          f"largest difference {worst:.2e}")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdmetrics-python", required=True,
                        help="an interpreter with sdmetrics and pyarrow installed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        worst = max(compare(name, args.sdmetrics_python, Path(tmp)) for name in TABLES)
    print(f"largest difference over all figures: {worst:.2e} (target <= 0.005)")
    sys.exit(0 if worst <= 0.005 else 1)


if __name__ == "__main__":
    main()
