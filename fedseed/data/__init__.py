"""Datasets (JSONL and built-in loaders), client partitions and batching."""
