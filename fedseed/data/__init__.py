"""Datasets (JSONL files, Python rows and built-in loaders), client partitions and batching."""

from fedseed.data.examples import Dataset, Example
from fedseed.data.sources import dataset_from

__all__ = ["Dataset", "Example", "dataset_from"]
