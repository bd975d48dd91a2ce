"""Training dataset exports: immutable, reproducible snapshots of a project's data.

The layers, each its own module:

* ``options``: what an export asks for (``ExportOptions``), validated once.
* ``rows``: for each kind, the rows as plain dicts, streamed from the database with
  server-side cursors (``.iterator(chunk_size=…)``), each with the split it belongs to
  (``split_of``: a hash of the prompt's external id against the chosen ratios), duplicate
  prompts dropped and the exclusion list applied; and each kind's pyarrow schema.
* ``writers``: rows to files — JSONL (sorted keys, compact separators), Parquet (pyarrow,
  row groups) or a Hugging Face datasets folder (Parquet per split and a dataset card) —
  one file per split, byte-identical for the same rows, each file's sha256 recorded.
* ``service`` (``scoring.services.exports``): the ``Export`` row, the background job with
  progress, downloads.

Nothing here is imported by the web process at module level beyond ``options``: pyarrow is
imported by the functions that write.
"""
