"""Datasets: LeRobot v3.0 writer/reader, training windows, normalization stats, HDF5 import.

Layout and design: docs/datasets.md. torch is imported only by `policy_stack.data.torch_dataset`.
"""
from .features import dataset_key, env_key
from .reader import DatasetFormatError, LeRobotDatasetReader
from .stats import compute_stats, load_stats, merge_stats, save_stats
from .windows import WindowSampler
from .writer import DatasetWriter

__all__ = ["DatasetWriter", "LeRobotDatasetReader", "DatasetFormatError", "WindowSampler",
           "compute_stats", "merge_stats", "save_stats", "load_stats", "dataset_key", "env_key"]
