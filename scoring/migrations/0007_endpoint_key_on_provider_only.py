"""Endpoints no longer name a key variable: the key is their provider's (0006 moved them).
A migration of its own: PostgreSQL cannot alter a table with the pending foreign-key checks
of 0006's data move in the same transaction."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("scoring", "0006_llm_providers"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="judgeendpoint",
            name="api_key_env",
        ),
    ]
