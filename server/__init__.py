"""The coordinator (installed as ``fedseed.server``): round orchestration over gRPC, persisted in SQLite."""
