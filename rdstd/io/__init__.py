"""Low-level file input/output shared by the store, the formats and the exporters: atomic writes, object storage,
Parquet error classes, operating-system write errors, and interrupts held across steps that must not be cut."""
