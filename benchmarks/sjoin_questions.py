"""The yardstick for ``ask --questions`` on the vector benchmark data: a geopandas script.

Reads the same GeoParquet, then answers the same two questions per reference with planar
``sjoin`` in the file's CRS (UTM): the count of buildings within 200 m (``dwithin``
predicate) and the nearest building (``sjoin_nearest``). Writes one JSON line per
question, like ``ask --questions``. Planar: some counts are wrong (see group_queries.py).

    python benchmarks/sjoin_questions.py /tmp/gr-bench/scene.parquet out.jsonl
"""

from __future__ import annotations

import json
import sys

import geopandas as gpd


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    gdf = gpd.read_parquet(src)
    bld = gdf[gdf["class"] == "building"]
    refs = gdf[gdf["class"] == "site"]
    within = gpd.sjoin(refs, bld, predicate="dwithin", distance=200.0)
    counts = within.groupby(level=0).size().reindex(refs.index, fill_value=0)
    near = gpd.sjoin_nearest(refs, bld, distance_col="d")
    near = near[~near.index.duplicated()]
    with open(out, "w") as f:
        for i, rid in zip(refs.index, refs["id"]):
            f.write(
                json.dumps(
                    {"question": f"How many buildings are within 200 m of #{rid}?", "answer": int(counts[i])}
                )
                + "\n"
            )
            f.write(
                json.dumps(
                    {"question": f"Which building is nearest to #{rid}?", "answer": near.loc[i, "id_right"]}
                )
                + "\n"
            )


if __name__ == "__main__":
    main()
