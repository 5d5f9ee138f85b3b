"""Input pipelines: list and shard files, then read records in batches."""
