"""Sample shards (WebDataset-style tar + manifest.parquet): writing, validated reading, PyTorch datasets."""
