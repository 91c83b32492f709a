"""librealsense's depth post-processing filters, chained in the order librealsense recommends.

The `filters` parameter names a subset ("decimation,spatial,temporal,hole_filling", any order); the chain
always runs decimation -> to disparity -> spatial -> temporal -> back to depth -> hole filling, because
spatial and temporal smoothing work on disparity (error grows with the square of depth) and hole
filling should see the smoothed result. They run on the raw depth, before alignment to color, as in
realsense-ros; decimation then only lowers the cost of the later steps, the aligned output keeps the
color resolution. Each filter keeps librealsense's default options.
"""
from __future__ import annotations

FILTERS = ("decimation", "spatial", "temporal", "hole_filling")


def parse_filters(text: str) -> tuple[str, ...]:
    """'spatial, decimation' -> ('decimation', 'spatial'); unknown names are a ValueError."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(FILTERS))
    if unknown:
        raise ValueError(f"unknown depth filter(s) {unknown}; choose from {list(FILTERS)}")
    return tuple(n for n in FILTERS if n in names)


def build_chain(names) -> list:
    """The pyrealsense2 processing blocks for `names` (from parse_filters), in application order."""
    import pyrealsense2 as rs

    chain = []
    if "decimation" in names:
        chain.append(rs.decimation_filter())
    smooth = [n for n in ("spatial", "temporal") if n in names]
    if smooth:
        chain.append(rs.disparity_transform(True))
        chain += [rs.spatial_filter() if n == "spatial" else rs.temporal_filter() for n in smooth]
        chain.append(rs.disparity_transform(False))
    if "hole_filling" in names:
        chain.append(rs.hole_filling_filter())
    return chain
