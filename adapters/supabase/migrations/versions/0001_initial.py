"""Initial schema: Supabase auth stand-in, the app's tables, credits and jobs, RLS.

Runs on plain PostgreSQL (tests, the embedded default) and on Supabase. What
Supabase already provides (the ``auth`` schema, ``auth.users``, ``auth.uid()``,
the ``anon``/``authenticated``/``service_role`` roles) is created only where it is
missing and never replaced.

Access model: the backend connects as the tables' owner (``postgres``) or as
``service_role``, both of which bypass RLS. Clients holding a user's JWT
(PostgREST, Realtime) act as ``authenticated``: they read their own rows and
public media, and write only their likes, comments and push tokens. Money and
job tables are never writable by clients: privileges are revoked table by table,
because Supabase's default privileges grant ALL on new tables in ``public`` to
``anon`` and ``authenticated``.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the domain's enums as they were when this migration was written;
# a later change to an enum needs its own migration.
ENTRY_KINDS = (
    "grant",
    "purchase",
    "allowance",
    "hold",
    "settle",
    "release",
    "refund",
    "expiry",
    "adjustment",
)
JOB_STATUSES = ("queued", "dispatched", "running", "succeeded", "failed", "cancelled")
MODEL_KINDS = ("image", "edit", "video", "training")
TIERS = ("free", "pro", "premium")


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


#: every table this migration creates in ``public``, parents before children
TABLES = (
    "profiles",
    "credit_lots",
    "credit_holds",
    "credit_ledger",
    "jobs",
    "images",
    "videos",
    "training_jobs",
    "iap_receipts",
    "push_tokens",
    "likes",
    "comments",
    "idempotency_records",
)

ROLES = """
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database of this cluster created it just now
            END;
            IF r = 'service_role' THEN
                -- as on Supabase: the backend's role is not subject to RLS
                EXECUTE 'ALTER ROLE service_role BYPASSRLS';
            END IF;
        END IF;
    END LOOP;
END
$$
"""

# Only what is missing: on Supabase the auth schema belongs to supabase_auth_admin
# and must not be touched.
AUTH = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'auth') THEN
        CREATE SCHEMA auth;
        GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
    END IF;
    IF to_regclass('auth.users') IS NULL THEN
        CREATE TABLE auth.users (
            id uuid PRIMARY KEY,
            email text,
            created_at timestamptz NOT NULL DEFAULT now()
        );
    END IF;
    IF to_regprocedure('auth.uid()') IS NULL THEN
        -- Supabase's definition: PostgREST puts the verified JWT's claims in
        -- request.jwt.claims (older versions: one setting per claim)
        CREATE FUNCTION auth.uid() RETURNS uuid
        LANGUAGE sql STABLE
        AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $f$;
    END IF;
END
$$
"""

SCHEMA = [
    "GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role",
    """
    CREATE FUNCTION public.set_updated_at() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        NEW.updated_at = now();
        RETURN NEW;
    END
    $$
    """,
    f"""
    CREATE TABLE profiles (
        id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
        email text,
        username text,
        display_name text,
        avatar_url text,
        credits integer NOT NULL DEFAULT 0
            CONSTRAINT profiles_credits_nonnegative CHECK (credits >= 0),
        subscription_tier text NOT NULL DEFAULT 'free'
            CONSTRAINT profiles_subscription_tier_check CHECK (subscription_tier IN {_in(TIERS)}),
        subscription_status text,
        subscription_expires_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT profiles_username_format CHECK (username ~ '^[A-Za-z0-9_.]{{3,30}}$')
    )
    """,
    "CREATE UNIQUE INDEX profiles_username_key ON profiles (lower(username))",
    """
    CREATE TRIGGER profiles_updated_at BEFORE UPDATE ON profiles
    FOR EACH ROW EXECUTE FUNCTION public.set_updated_at()
    """,
    f"""
    CREATE TABLE credit_lots (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        source text NOT NULL CHECK (source IN {_in(ENTRY_KINDS)}),
        amount integer NOT NULL CHECK (amount >= 0),
        remaining integer NOT NULL,
        reference text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL,
        expires_at timestamptz,
        CONSTRAINT credit_lots_remaining_range CHECK (remaining BETWEEN 0 AND amount)
    )
    """,
    # spending reads only the lots with credits left
    "CREATE INDEX credit_lots_user_live_idx ON credit_lots (user_id) WHERE remaining > 0",
    """
    CREATE TABLE credit_holds (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        amount integer NOT NULL CHECK (amount > 0),
        allocations jsonb NOT NULL DEFAULT '[]'::jsonb,
        status text NOT NULL DEFAULT 'open'
            CHECK (status IN ('open', 'settled', 'released')),
        reference text NOT NULL,
        created_at timestamptz NOT NULL,
        closed_at timestamptz,
        CONSTRAINT credit_holds_closed_at CHECK ((status = 'open') = (closed_at IS NULL))
    )
    """,
    "CREATE INDEX credit_holds_user_created_idx ON credit_holds (user_id, created_at DESC)",
    f"""
    CREATE TABLE credit_ledger (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN {_in(ENTRY_KINDS)}),
        amount integer NOT NULL,
        balance_after integer NOT NULL,
        reference text NOT NULL,
        idempotency_key text NOT NULL,
        lot_id uuid REFERENCES credit_lots (id),
        hold_id uuid REFERENCES credit_holds (id),
        created_at timestamptz NOT NULL,
        CONSTRAINT credit_ledger_user_idempotency_key UNIQUE (user_id, idempotency_key)
    )
    """,
    """
    CREATE INDEX credit_ledger_user_created_idx
        ON credit_ledger (user_id, created_at DESC, id DESC)
    """,
    "CREATE INDEX credit_ledger_lot_idx ON credit_ledger (lot_id)",
    "CREATE INDEX credit_ledger_hold_idx ON credit_ledger (hold_id)",
    # the ledger is history: an entry is corrected by another entry, never edited
    # (DELETE stays possible so that deleting a user cascades)
    """
    CREATE FUNCTION public.credit_ledger_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'credit_ledger is append-only' USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER credit_ledger_no_update BEFORE UPDATE ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION public.credit_ledger_append_only()
    """,
    f"""
    CREATE TABLE jobs (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN {_in(MODEL_KINDS)}),
        model_id text NOT NULL,
        params jsonb NOT NULL,
        cost integer NOT NULL CHECK (cost >= 0),
        hold_id uuid REFERENCES credit_holds (id),
        status text NOT NULL CHECK (status IN {_in(JOB_STATUSES)}),
        attempts integer NOT NULL DEFAULT 0,
        provider text,
        provider_job_id text,
        progress integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
        error jsonb,
        asset_ids uuid[] NOT NULL DEFAULT '{{}}',
        priority integer NOT NULL DEFAULT 0,
        version integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
    )
    """,
    # the dispatcher and the reconciler scan by status, oldest first
    "CREATE INDEX jobs_status_created_idx ON jobs (status, created_at)",
    "CREATE INDEX jobs_user_created_idx ON jobs (user_id, created_at DESC)",
    "CREATE INDEX jobs_hold_idx ON jobs (hold_id)",
    # provider webhooks name the provider's id, not ours
    """
    CREATE INDEX jobs_provider_job_idx ON jobs (provider, provider_job_id)
        WHERE provider_job_id IS NOT NULL
    """,
    """
    CREATE TABLE images (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        storage_key text NOT NULL UNIQUE,
        content_type text NOT NULL,
        width integer NOT NULL CHECK (width > 0),
        height integer NOT NULL CHECK (height > 0),
        byte_size bigint NOT NULL CHECK (byte_size >= 0),
        prompt text NOT NULL DEFAULT '',
        model_id text NOT NULL,
        job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
        is_public boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE videos (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        storage_key text NOT NULL UNIQUE,
        thumbnail_key text,
        content_type text NOT NULL,
        width integer NOT NULL CHECK (width > 0),
        height integer NOT NULL CHECK (height > 0),
        byte_size bigint NOT NULL CHECK (byte_size >= 0),
        duration_seconds double precision CHECK (duration_seconds >= 0),
        prompt text NOT NULL DEFAULT '',
        model_id text NOT NULL,
        job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
        is_public boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX images_user_created_idx ON images (user_id, created_at DESC)",
    "CREATE INDEX images_job_idx ON images (job_id)",
    "CREATE INDEX images_feed_idx ON images (created_at DESC, id DESC) WHERE is_public",
    "CREATE INDEX videos_user_created_idx ON videos (user_id, created_at DESC)",
    "CREATE INDEX videos_job_idx ON videos (job_id)",
    "CREATE INDEX videos_feed_idx ON videos (created_at DESC, id DESC) WHERE is_public",
    f"""
    CREATE TABLE training_jobs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
        status text NOT NULL DEFAULT 'queued' CHECK (status IN {_in(JOB_STATUSES)}),
        model_name text NOT NULL,
        trigger_word text,
        steps integer NOT NULL CHECK (steps > 0),
        image_keys text[] NOT NULL DEFAULT '{{}}',
        lora_url text,
        cost integer NOT NULL DEFAULT 0 CHECK (cost >= 0),
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        completed_at timestamptz
    )
    """,
    "CREATE INDEX training_jobs_user_created_idx ON training_jobs (user_id, created_at DESC)",
    "CREATE INDEX training_jobs_job_idx ON training_jobs (job_id)",
    """
    CREATE TRIGGER training_jobs_updated_at BEFORE UPDATE ON training_jobs
    FOR EACH ROW EXECUTE FUNCTION public.set_updated_at()
    """,
    """
    CREATE TABLE iap_receipts (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        store text NOT NULL CHECK (store IN ('apple', 'google')),
        product_id text NOT NULL,
        transaction_id text NOT NULL,
        original_transaction_id text,
        payload jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        -- a store transaction grants credits once, whoever presents it
        CONSTRAINT iap_receipts_store_transaction UNIQUE (store, transaction_id)
    )
    """,
    "CREATE INDEX iap_receipts_user_idx ON iap_receipts (user_id, created_at DESC)",
    # renewals and refunds from store notifications name the original transaction
    "CREATE INDEX iap_receipts_original_idx ON iap_receipts (store, original_transaction_id)",
    """
    CREATE TABLE push_tokens (
        token text PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        platform text NOT NULL CHECK (platform IN ('ios', 'android', 'web')),
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX push_tokens_user_idx ON push_tokens (user_id)",
    """
    CREATE TABLE likes (
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        content_id uuid NOT NULL,
        content_type text NOT NULL CHECK (content_type IN ('image', 'video')),
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, content_id)
    )
    """,
    "CREATE INDEX likes_content_idx ON likes (content_id)",
    """
    CREATE TABLE comments (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        content_id uuid NOT NULL,
        body text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 2000),
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX comments_content_created_idx ON comments (content_id, created_at)",
    "CREATE INDEX comments_user_idx ON comments (user_id)",
    """
    CREATE TABLE idempotency_records (
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        key text NOT NULL,
        request_hash text NOT NULL,
        status_code integer NOT NULL,
        response_body bytea NOT NULL,
        created_at timestamptz NOT NULL,
        PRIMARY KEY (user_id, key)
    )
    """,
    # for pruning old records
    "CREATE INDEX idempotency_records_created_idx ON idempotency_records (created_at)",
]

_UID = "(SELECT auth.uid())"  # a subselect: evaluated once per query, not per row


def _select_own(table: str, owner: str = "user_id") -> str:
    return (
        f"CREATE POLICY {table}_select_own ON {table} FOR SELECT TO authenticated "
        f"USING ({_UID} = {owner})"
    )


def _public_media(table: str) -> list[str]:
    return [
        f"CREATE POLICY {table}_select_public ON {table} FOR SELECT TO anon, authenticated "
        f"USING (is_public)",
        _select_own(table),
        f"GRANT SELECT ON {table} TO anon, authenticated",
    ]


def _own_rows(table: str) -> list[str]:
    """Rows the user creates and deletes from the app directly."""
    return [
        _select_own(table),
        f"CREATE POLICY {table}_insert_own ON {table} FOR INSERT TO authenticated "
        f"WITH CHECK ({_UID} = user_id)",
        f"CREATE POLICY {table}_delete_own ON {table} FOR DELETE TO authenticated "
        f"USING ({_UID} = user_id)",
        f"GRANT SELECT, INSERT, DELETE ON {table} TO authenticated",
    ]


def _read_own(table: str) -> list[str]:
    return [_select_own(table), f"GRANT SELECT ON {table} TO authenticated"]


SECURITY = [
    # start from nothing whatever the database's default privileges say
    *(f"REVOKE ALL ON {t} FROM PUBLIC, anon, authenticated" for t in TABLES),
    *(f"GRANT ALL ON {t} TO service_role" for t in TABLES),
    *(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY" for t in TABLES),
    # Alembic's bookkeeping sits in public too, where PostgREST would expose it
    "ALTER TABLE alembic_version ENABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON alembic_version FROM PUBLIC, anon, authenticated",
    # profiles: own row; the user edits only the cosmetic columns, never credits
    _select_own("profiles", owner="id"),
    f"CREATE POLICY profiles_update_own ON profiles FOR UPDATE TO authenticated "
    f"USING ({_UID} = id) WITH CHECK ({_UID} = id)",
    "GRANT SELECT ON profiles TO authenticated",
    "GRANT UPDATE (username, display_name, avatar_url) ON profiles TO authenticated",
    *_public_media("images"),
    *_public_media("videos"),
    *_own_rows("likes"),
    *_own_rows("push_tokens"),
    *_own_rows("comments"),
    # comments on shared content are readable by everyone signed in
    "CREATE POLICY comments_select_public_content ON comments FOR SELECT TO authenticated "
    "USING (EXISTS (SELECT 1 FROM images i WHERE i.id = content_id AND i.is_public) "
    "OR EXISTS (SELECT 1 FROM videos v WHERE v.id = content_id AND v.is_public))",
    # money, jobs and receipts: read-only for their owner, written only by the backend
    *(
        stmt
        for t in (
            "credit_ledger",
            "credit_lots",
            "credit_holds",
            "jobs",
            "training_jobs",
            "iap_receipts",
            "idempotency_records",
        )
        for stmt in _read_own(t)
    ),
]


def upgrade() -> None:
    op.execute(ROLES)
    op.execute(AUTH)
    for statement in (*SCHEMA, *SECURITY):
        op.execute(statement)


def downgrade() -> None:
    # auth.* and the roles stay: they may be Supabase's, and roles are cluster-wide
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP FUNCTION IF EXISTS public.credit_ledger_append_only()")
    op.execute("DROP FUNCTION IF EXISTS public.set_updated_at()")
