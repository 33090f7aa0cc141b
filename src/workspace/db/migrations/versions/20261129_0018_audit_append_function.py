"""audit: the chain is appended by one server-side function, and sealed right after the commit

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29 03:00:00

Appending to a tenant's chain locks its head row until the transaction commits. The app used to read
the head (one round trip), hash the events, write them and move the head (a second), then commit: while
the head was locked, the request's thread waited twice to run Python again, behind the other requests
of its process. Those waits, not the database, set how many changes per second a tenant could make.

On PostgreSQL ``audit_append`` now does the whole append in the server: it locks the head, numbers the
events, hashes each one (``sha256(prev_hash || canonical JSON)``, the app sends the JSON in two parts
around the ``seq`` it cannot know) and moves the head. The app sends it together with the COMMIT.

The head's MAC needs the server key, which never reaches the database. So the MAC now seals a point of
the chain, ``(sealed_seq, sealed_hash)``, which the app moves up just after each commit (a separate
one-statement transaction: the head is not held meanwhile). Existing heads are sealed where they end.
The verifier checks the chain to its end and the seal on it; events after the seal are reported as
not sealed yet. SQLite (one writer) keeps appending and sealing in the transaction.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

GENESIS = "0" * 64
EVENT_COLUMNS = ("created_at", "actor_type", "actor_id", "actor_label", "action", "object_type", "object_id",
                 "object_label", "changes", "ip", "user_agent", "request_id")


def upgrade() -> None:
    op.add_column("audit_head", sa.Column("sealed_seq", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("audit_head", sa.Column("sealed_hash", sa.String(64), nullable=False, server_default=GENESIS))
    # The MAC of every existing head covers (last_seq, last_hash): that is where it is sealed.
    op.execute("UPDATE audit_head SET sealed_seq = last_seq, sealed_hash = last_hash")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE OR REPLACE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' OR NEW.last_seq < OLD.last_seq OR NEW.sealed_seq < OLD.sealed_seq
                   OR NEW.sealed_seq > NEW.last_seq THEN
                    RAISE EXCEPTION 'audit_head only moves forward';
                END IF;
                RETURN NEW;
            END $$
        """)
        selected = ", ".join(f"r.{c}" for c in EVENT_COLUMNS)
        op.execute(f"""
            CREATE FUNCTION audit_append(p_tenant integer, p_rows json, p_prefixes text[], p_suffixes text[])
            RETURNS TABLE (new_seq bigint, new_hash varchar) LANGUAGE plpgsql AS $$
            DECLARE
                v_seq bigint;
                v_hash varchar;
                v_next varchar;
            BEGIN
                SELECT h.last_seq, h.last_hash INTO v_seq, v_hash
                  FROM audit_head h WHERE h.tenant_id = p_tenant FOR UPDATE;
                IF NOT FOUND THEN
                    INSERT INTO audit_head (tenant_id, last_seq, last_hash, mac, sealed_seq, sealed_hash)
                    VALUES (p_tenant, 0, '{GENESIS}', '', 0, '{GENESIS}');
                    v_seq := 0;
                    v_hash := '{GENESIS}';
                END IF;
                FOR i IN 1 .. coalesce(array_length(p_prefixes, 1), 0) LOOP
                    v_seq := v_seq + 1;
                    v_next := encode(sha256(convert_to(v_hash || p_prefixes[i] || v_seq::text || p_suffixes[i],
                                                       'UTF8')), 'hex');
                    INSERT INTO audit_event (tenant_id, seq, {", ".join(EVENT_COLUMNS)}, prev_hash, hash)
                    SELECT p_tenant, v_seq, {selected}, v_hash, v_next
                      FROM json_populate_record(NULL::audit_event, p_rows -> (i - 1)) AS r;
                    v_hash := v_next;
                END LOOP;
                UPDATE audit_head h SET last_seq = v_seq, last_hash = v_hash WHERE h.tenant_id = p_tenant;
                RETURN QUERY SELECT v_seq, v_hash;
            END $$
        """)
    else:
        op.execute("DROP TRIGGER audit_head_forward")
        op.execute("CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head "
                   "WHEN NEW.last_seq < OLD.last_seq OR NEW.sealed_seq < OLD.sealed_seq "
                   "OR NEW.sealed_seq > NEW.last_seq "
                   "BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_append(integer, json, text[], text[])")
        op.execute("""
            CREATE OR REPLACE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' OR NEW.last_seq < OLD.last_seq THEN
                    RAISE EXCEPTION 'audit_head only moves forward';
                END IF;
                RETURN NEW;
            END $$
        """)
    else:
        op.execute("DROP TRIGGER audit_head_forward")
        op.execute("CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head "
                   "WHEN NEW.last_seq < OLD.last_seq "
                   "BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END")
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("sealed_hash")
        batch.drop_column("sealed_seq")
