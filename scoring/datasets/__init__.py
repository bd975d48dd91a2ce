"""Training dataset exports (immutable, reproducible snapshots) and project backups.

An export, layer by layer: ``options`` (what it asks for, validated once), ``rows`` (each
kind's rows streamed from the database, with their pyarrow schemas), ``writers`` (JSONL,
Parquet or a Hugging Face datasets folder), ``card`` (the README dataset card), ``services``
(the Export row and the job that writes its files)."""
