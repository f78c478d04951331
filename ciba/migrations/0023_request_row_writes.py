"""Fewer index writes per CIBA request, and room for its notification's lease (issue 29).

Every ``INSERT`` of a request, and every ``UPDATE`` of it that is not HOT (PostgreSQL's
heap-only update: possible only when no indexed column changes and the row's page has room
for the new version), writes one entry into each of the table's indexes. The notification
batch updates each new request twice (its lease, then its outcome), so on a table of 10^5
rows the lease ``UPDATE`` of 100 rows wrote 11 WAL records per row: the row and 9 indexes.

- ``user``: no index of its own. ``ciba_req_user_state_exp`` (user, state, expiry) starts
  with the user and serves every lookup by user, the cascade from a deleted user included.
- ``auth_req_id``: PostgreSQL only, no ``varchar_pattern_ops`` twin of its unique index
  (Django adds one to a unique ``CharField`` for ``LIKE 'prefix%'``); an ``auth_req_id`` is
  only ever compared whole (``=``), which the unique index serves, and never searched.
- ``fillfactor = 70`` (PostgreSQL only): new rows leave 30% of each page free, so the lease
  ``UPDATE`` (one unindexed column) is written as a HOT update on the row's own page instead
  of a new row version with 7 index entries. It applies to pages written from now on; the
  table takes about 40% more pages for its rows.

Reversible: the index and the fill factor come back as they were.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

FILLFACTOR = 70


def _like_index(schema_editor, model):
    table = model._meta.db_table
    return schema_editor.quote_name(schema_editor._create_index_name(table, ["auth_req_id"], suffix="_like"))


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("ciba", "AuthenticationRequest")
    table = schema_editor.quote_name(model._meta.db_table)
    schema_editor.execute(f"DROP INDEX IF EXISTS {_like_index(schema_editor, model)}")
    schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("ciba", "AuthenticationRequest")
    table = schema_editor.quote_name(model._meta.db_table)
    column = schema_editor.quote_name(model._meta.get_field("auth_req_id").column)
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {_like_index(schema_editor, model)} ON {table} ({column} varchar_pattern_ops)"
    )
    schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("ciba", "0022_login_hint_handles"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="authenticationrequest",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="ciba_requests",
                to=settings.AUTH_USER_MODEL,
                verbose_name="user",
            ),
        ),
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
