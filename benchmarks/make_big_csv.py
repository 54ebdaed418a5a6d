"""Write a large synthetic CSV like the one in issue 8: numeric and categorical features, a
binary target, missing values.

    python benchmarks/make_big_csv.py --rows 2330000 --out data/external/big.csv

Run it with the generated project's interpreter (it needs numpy and pyarrow, which the template's
own environment does not have). 2.33 M rows give a file of about 200 MB: 10 numeric columns
(rounded to a few decimals, as exported data is), 3 categorical ones (4 to 50 values) and a
target `churned` (0/1) that depends on both kinds. The file is written in blocks, so memory stays
flat whatever --rows is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

NUMERIC = 10
CATEGORIES = {"plan": 4, "region": 12, "channel": 50}
BLOCK = 250_000


def block(rng: np.random.Generator, rows: int) -> pa.Table:
    """One block of rows; each block draws fresh values from the same distributions."""
    columns: dict[str, np.ndarray] = {}
    signal = rng.normal(0.0, 1.0, rows)
    for index in range(NUMERIC):
        scale = 10.0 ** (index % 4)
        values = rng.normal(0.0, 1.0, rows)
        if index < 4:
            signal += 0.6 * values
        columns[f"x{index}"] = (values * scale + 3 * scale).round(3 - index % 4)
    arrays: dict[str, pa.Array] = {
        name: pa.array(values, mask=rng.random(rows) < 0.02) for name, values in columns.items()
    }
    for name, count in CATEGORIES.items():
        codes = rng.integers(0, count, rows)
        labels = np.array([f"{name}_{code:02d}" for code in range(count)], dtype=object)
        if name == "plan":
            signal += np.array([-1.0, -0.3, 0.3, 1.0])[codes]
        arrays[name] = pa.array(labels[codes], mask=rng.random(rows) < 0.01)
    arrays["churned"] = pa.array((signal + rng.normal(0.0, 1.0, rows) > 1.0).astype(np.int8))
    return pa.table(arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_330_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    writer = None
    with args.out.open("wb") as sink:
        while written < args.rows:
            rows = min(BLOCK, args.rows - written)
            table = block(rng, rows)
            if writer is None:
                # Unquoted, as most exports are (no value here contains a comma).
                sink.write((",".join(table.column_names) + "\n").encode())
                options = pcsv.WriteOptions(include_header=False, quoting_style="none")
                writer = pcsv.CSVWriter(sink, table.schema, write_options=options)
            writer.write_table(table)
            written += rows
        if writer is not None:
            writer.close()
    size = args.out.stat().st_size / 1e6
    print(f"wrote {written} rows, {size:.1f} MB to {args.out}")


if __name__ == "__main__":
    main()
