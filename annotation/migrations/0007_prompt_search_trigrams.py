"""Trigram indexes for the prompt table's search (``icontains`` on the external id and the
message text, which Django writes as ``UPPER(column) LIKE UPPER(pattern)``): PostgreSQL only,
with the pg_trgm extension (trusted since PostgreSQL 13: a database owner may create it).
Where the extension cannot be created the search works as before, scanning the prompts."""

from django.db import migrations, transaction

INDEXES = {
    "prompt_search_trgm": "search_text",
    "prompt_external_id_trgm": "external_id",
}


def create(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception as exc:  # no privilege, or not installed: search scans as before
        print(f"\n  pg_trgm unavailable ({exc}); the prompt search stays without an index")
        return
    with connection.cursor() as cursor:
        for name, column in INDEXES.items():
            cursor.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "annotation_prompt" '
                f'USING gin (UPPER("{column}"::text) gin_trgm_ops)'
            )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in INDEXES:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("annotation", "0006_page_indexes")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
