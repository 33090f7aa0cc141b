"""task: on PostgreSQL, check the (tenant, project) of inserted tasks once per statement

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28 21:55:00

PostgreSQL checks a foreign key with one lookup per inserted row; for an import's COPY of hundreds of
thousands of tasks that lookup was more than half the server's work (about 8 of 13 µs a row). This
replaces the task → project key on PostgreSQL with the same guarantees, checked per statement:

* after INSERT or UPDATE on task, one query over the statement's new rows (a transition table) finds
  each distinct (tenant, project) among them and locks its project row FOR KEY SHARE, exactly the lock
  a foreign key takes (so a concurrent delete of the project waits for this transaction); a pair
  without a project raises foreign_key_violation;
* before DELETE on project, the project's tasks are deleted (the key's ON DELETE CASCADE).

SQLite keeps the declared foreign key (its inserts are not slowed by it the same way).
"""

from __future__ import annotations

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE task DROP CONSTRAINT fk_task_tenant_id_project")
    op.execute("""
        CREATE FUNCTION task_project_exists() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            wanted bigint;
            found bigint;
        BEGIN
            SELECT count(*) INTO wanted FROM (SELECT DISTINCT tenant_id, project_id FROM new_rows) AS n;
            SELECT count(*) INTO found FROM (
                SELECT p.id FROM project AS p
                JOIN (SELECT DISTINCT tenant_id, project_id FROM new_rows) AS n
                  ON p.tenant_id = n.tenant_id AND p.id = n.project_id
                FOR KEY SHARE OF p) AS locked;
            IF found < wanted THEN
                RAISE EXCEPTION 'task rows refer to a project that does not exist in their tenant'
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER task_project_exists_on_insert AFTER INSERT ON task
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_project_exists()
    """)
    op.execute("""
        CREATE TRIGGER task_project_exists_on_update AFTER UPDATE ON task
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_project_exists()
    """)
    op.execute("""
        CREATE FUNCTION project_delete_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM task WHERE tenant_id = OLD.tenant_id AND project_id = OLD.id;
            RETURN OLD;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER project_delete_tasks BEFORE DELETE ON project
        FOR EACH ROW EXECUTE FUNCTION project_delete_tasks()
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER project_delete_tasks ON project")
    op.execute("DROP FUNCTION project_delete_tasks()")
    op.execute("DROP TRIGGER task_project_exists_on_update ON task")
    op.execute("DROP TRIGGER task_project_exists_on_insert ON task")
    op.execute("DROP FUNCTION task_project_exists()")
    op.execute("ALTER TABLE task ADD CONSTRAINT fk_task_tenant_id_project FOREIGN KEY (tenant_id, project_id) "
               "REFERENCES project (tenant_id, id) ON DELETE CASCADE")
