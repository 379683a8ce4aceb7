"""idempotency_records.job_id, job_snapshot: a submission's answer is kept as the job
it submitted (msgspec's JSON of the core's ``Job``), and the HTTP edge renders the
first answer and every replay from it; the core no longer stores response bytes.

Records written before keep their status code and body, now nullable, and replay
them as they are; a record holds one or the other (a CHECK). Their job id is not
filled in from the body: the edge reads it from there, as it did.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # no foreign key to jobs: the record is written with its job, in the same
    # transaction, on the submission's hot path; and it outlives nothing it names
    op.execute(
        "ALTER TABLE idempotency_records"
        " ADD COLUMN job_id uuid,"
        " ADD COLUMN job_snapshot bytea,"
        " ALTER COLUMN status_code DROP NOT NULL,"
        " ALTER COLUMN response_body DROP NOT NULL,"
        " ADD CONSTRAINT idempotency_records_answer CHECK"
        " ((job_snapshot IS NOT NULL AND job_id IS NOT NULL)"
        " OR (status_code IS NOT NULL AND response_body IS NOT NULL))"
    )


def downgrade() -> None:
    # the records written since hold no rendered answer: they cannot be kept
    op.execute("DELETE FROM idempotency_records WHERE response_body IS NULL")
    op.execute(
        "ALTER TABLE idempotency_records"
        " DROP CONSTRAINT IF EXISTS idempotency_records_answer,"
        " DROP COLUMN IF EXISTS job_snapshot,"
        " DROP COLUMN IF EXISTS job_id,"
        " ALTER COLUMN status_code SET NOT NULL,"
        " ALTER COLUMN response_body SET NOT NULL"
    )
