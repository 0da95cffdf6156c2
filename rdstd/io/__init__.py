"""Low-level file input/output shared by the store, the formats and the exporters: atomic writes, object storage,
Parquet error classes and operating-system write errors."""
