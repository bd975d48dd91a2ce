"""The export kinds: one module per kind (its pyarrow schema, its rows, its row count),
the prompts and rubrics they share, and the registry that names them."""
