"""LeRobot v3.0 paths, and the parquet writer on top of policy_stack.persist's crash-safe commit.

A temp file's name ends in `.tmp` (policy_stack.persist): LeRobot finds data/episode parquets by
globbing `*/*.parquet`, so a half-written `.parquet.tmp` is never picked up, and our writer deletes
leftovers when it reopens.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from policy_stack.persist import write_file_atomic

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNK_SIZE = 1000          # files per chunk-XXX folder
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def chunk_file(flat_index: int, chunks_size: int = DEFAULT_CHUNK_SIZE) -> tuple[int, int]:
    """Running file number -> (chunk_index, file_index), the rotation rule LeRobot uses."""
    return flat_index // chunks_size, flat_index % chunks_size


def write_parquet_atomic(path: Path, table: pa.Table, compression: str = "snappy") -> None:
    write_file_atomic(path, lambda tmp: pq.write_table(table, tmp, compression=compression))


def tasks_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet as pandas would write it: the task string is the (unnamed) index.

    LeRobot reads it with pandas and returns `tasks.iloc[task_index].name` as `item["task"]`; without
    the pandas metadata that silently becomes an int (docs/datasets.md). pandas is not a dependency
    here, so the metadata is written by hand.
    """
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    schema = pa.schema([("task_index", pa.int64()), ("__index_level_0__", pa.string())],
                       metadata={b"pandas": json.dumps(pandas_meta).encode()})
    return pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                     "__index_level_0__": pa.array(tasks, pa.string())}, schema=schema)


def read_tasks(path: Path) -> list[str]:
    """Task strings in task_index order; accepts the pandas-index layout and a plain `task` column."""
    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}") or b"{}")
    index_cols = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    text_col = index_cols[0] if index_cols else ("task" if "task" in table.column_names else None)
    if text_col is None or text_col not in table.column_names or "task_index" not in table.column_names:
        raise ValueError(f"{path}: expected a task_index column and the task text as the pandas index")
    order = table.column("task_index").to_pylist()
    texts = table.column(text_col).to_pylist()
    if sorted(order) != list(range(len(order))):
        raise ValueError(f"{path}: task_index must be 0..{len(order) - 1}, got {order}")
    by_index = dict(zip(order, texts))
    return [by_index[i] for i in range(len(order))]
