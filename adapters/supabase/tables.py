"""The schema as SQLAlchemy Core tables, for building queries.

The migrations in ``migrations/versions`` own the DDL (constraints, indexes, RLS);
these definitions mirror their columns, and a test checks that they still do.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Time,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()


def _ts(name: str, *, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


auth_users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", Text),
    _ts("created_at"),
    schema="auth",
)

profiles = Table(
    "profiles",
    metadata,
    Column("id", Uuid, ForeignKey("auth.users.id", ondelete="CASCADE"), primary_key=True),
    Column("email", Text),
    Column("username", Text),
    Column("display_name", Text),
    Column("avatar_url", Text),
    Column("credits", Integer, nullable=False),
    Column("subscription_tier", Text, nullable=False),
    Column("subscription_status", Text),
    _ts("subscription_expires_at", nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
    # 0200: the social side's columns (issue #17)
    Column("bio", Text),
    Column("is_private", Boolean, nullable=False),
    Column("language", Text),
    Column("content_filters", ARRAY(Text), nullable=False),
    _ts("username_changed_at", nullable=True),
    Column("avatar_key", Text),
    # 0210: trust and safety (issue #17)
    _ts("suspended_at", nullable=True),
    _ts("erased_at", nullable=True),
    # 0500: the analytics opt-out (issue #20)
    Column("analytics", Boolean, nullable=False),
)

credit_lots = Table(
    "credit_lots",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("source", Text, nullable=False),
    Column("amount", Integer, nullable=False),
    Column("remaining", Integer, nullable=False),
    Column("reference", Text, nullable=False),
    _ts("created_at"),
    _ts("expires_at", nullable=True),
    # 0011: what a partial refund claimed while jobs held it
    Column("owed", Integer, nullable=False),
)

credit_holds = Table(
    "credit_holds",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("allocations", JSONB, nullable=False),  # [[lot_id, amount], ...]
    Column("status", Text, nullable=False),
    Column("reference", Text, nullable=False),
    _ts("created_at"),
    _ts("closed_at", nullable=True),
)

credit_ledger = Table(
    "credit_ledger",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("amount", Integer, nullable=False),
    Column("balance_after", Integer, nullable=False),
    Column("reference", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("lot_id", Uuid, ForeignKey("credit_lots.id")),
    Column("hold_id", Uuid, ForeignKey("credit_holds.id")),
    _ts("created_at"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("cost", Integer, nullable=False),
    Column("hold_id", Uuid, ForeignKey("credit_holds.id")),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("provider", Text),
    Column("provider_job_id", Text),
    Column("progress", Integer, nullable=False),
    Column("error", JSONB(none_as_null=True)),
    Column("asset_ids", ARRAY(Uuid), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    # 0004: retries, leases, dead letters, wake-ups
    _ts("next_attempt_at", nullable=True),
    Column("lease_owner", Text),
    _ts("lease_expires_at", nullable=True),
    _ts("dead_lettered_at", nullable=True),
    _ts("enqueued_at", nullable=True),
    Column("rerun_of", Uuid, ForeignKey("jobs.id")),
    # 0009: when the provider accepted the attempt (the job timeout runs from it)
    _ts("submitted_at", nullable=True),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("job_id", Uuid, ForeignKey("jobs.id"), nullable=False),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("message", Text, nullable=False),
    _ts("created_at"),
)


def _media_columns() -> list[Column[object]]:
    return [
        Column("id", Uuid, primary_key=True),
        Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
        Column("storage_key", Text, nullable=False),
        Column("content_type", Text, nullable=False),
        Column("width", Integer, nullable=False),
        Column("height", Integer, nullable=False),
        Column("byte_size", BigInteger, nullable=False),
        Column("prompt", Text, nullable=False),
        Column("model_id", Text, nullable=False),
        Column("job_id", Uuid, ForeignKey("jobs.id")),
        Column("is_public", Boolean, nullable=False),
        _ts("created_at"),
        Column("caption", Text),  # 0005
    ]


images = Table("images", metadata, *_media_columns())

videos = Table(
    "videos",
    metadata,
    *_media_columns(),
    Column("thumbnail_key", Text),
    Column("duration_seconds", Double),
)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("user_id", Uuid, ForeignKey("profiles.id"), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("request_hash", Text, nullable=False),
    # before 0012: the answer as rendered (replayed as it is); since: the job snapshot
    Column("status_code", Integer),
    Column("response_body", LargeBinary),
    _ts("created_at"),
    Column("job_id", Uuid),
    Column("job_snapshot", LargeBinary),
)

#: constraint names the repositories translate into domain errors
upload_intents = Table(
    "upload_intents",
    metadata,
    Column("storage_key", Text, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    _ts("created_at"),
)

LEDGER_IDEMPOTENCY_KEY = "credit_ledger_user_idempotency_key"
IDEMPOTENCY_RECORDS_PKEY = "idempotency_records_pkey"


# --- 0002: in-app purchases ----------------------------------------------------------

store_transactions = Table(
    "store_transactions",
    metadata,
    Column("store", Text, primary_key=True),
    Column("transaction_id", Text, primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("original_transaction_id", Text, nullable=False),
    Column("product_id", Text, nullable=False),
    Column("store_product_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("credits", Integer, nullable=False),
    Column("lot_id", Uuid, ForeignKey("credit_lots.id")),
    Column("status", Text, nullable=False),
    Column("clawed_back", Integer, nullable=False),
    Column("acknowledged", Boolean, nullable=False),
    _ts("purchased_at"),
    _ts("created_at"),
    _ts("revocation_event_at", nullable=True),
    Column("environment", Text),  # 0400: Production or Sandbox (Apple), else null
    Column("price_micros", BigInteger),  # 0510: with currency, or both null
    Column("currency", Text),
    Column("refunded_micros", BigInteger),  # 0520: of price_micros, what refunds gave back
)

entitlements = Table(
    "entitlements",
    metadata,
    Column("store", Text, primary_key=True),
    Column("original_transaction_id", Text, primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("product_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("auto_renew", Boolean, nullable=False),
    _ts("period_start"),
    _ts("period_end"),
    Column("latest_transaction_id", Text, nullable=False),
    _ts("event_at"),
    _ts("updated_at"),
    _ts("next_allowance_at", nullable=True),
)

allowance_grants = Table(
    "allowance_grants",
    metadata,
    Column("store", Text, primary_key=True),
    Column("original_transaction_id", Text, primary_key=True),
    Column("month_start", DateTime(timezone=True), primary_key=True),
    _ts("month_end"),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("transaction_id", Text, nullable=False),
    Column("product_id", Text, nullable=False),
    Column("credits", Integer, nullable=False),
    Column("lot_id", Uuid, ForeignKey("credit_lots.id"), nullable=False),
    _ts("granted_at"),
    Column("clawed_back", Integer, nullable=False),
)

store_notifications = Table(
    "store_notifications",
    metadata,
    Column("store", Text, primary_key=True),
    Column("notification_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    _ts("received_at"),
)


# --- 0100: training photos (issue #16) ------------------------------------------------

photo_sets = Table(
    "photo_sets",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("name", Text),
    _ts("created_at"),
)

training_photos = Table(
    "training_photos",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("set_id", Uuid, ForeignKey("photo_sets.id"), nullable=False),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("storage_key", Text),
    Column("content_type", Text),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("byte_size", Integer, nullable=False),
    Column("measures", JSONB),
    Column("accepted", Boolean, nullable=False),
    Column("reasons", ARRAY(Text), nullable=False),
    Column("score", Integer, nullable=False),
    _ts("created_at"),
)


# --- 0300: notifications (issue #18) --------------------------------------------------

notifications = Table(
    "notifications",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("in_inbox", Boolean, nullable=False),
    Column("count", Integer, nullable=False),
    Column("group", Text),
    _ts("group_until", nullable=True),
    _ts("read_at", nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
)

notification_keys = Table(
    "notification_keys",
    metadata,
    Column("user_id", Uuid, ForeignKey("profiles.id"), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("notification_id", Uuid, nullable=False),
    _ts("created_at"),
)

notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("notification_id", Uuid, ForeignKey("notifications.id"), nullable=False),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("status", Text, nullable=False),
    _ts("due_at"),
    Column("attempts", Integer, nullable=False),
    _ts("claimed_until", nullable=True),
    _ts("created_at"),
    _ts("finished_at", nullable=True),
    Column("detail", Text),
)

push_tickets = Table(
    "push_tickets",
    metadata,
    Column("id", Text, primary_key=True),
    Column("token", Text, nullable=False),
    Column("delivery_id", Uuid, ForeignKey("notification_deliveries.id"), nullable=False),
    _ts("created_at"),
)

notification_preferences = Table(
    "notification_preferences",
    metadata,
    Column("user_id", Uuid, ForeignKey("profiles.id"), primary_key=True),
    Column("channels", JSONB, nullable=False),
    Column("quiet_start", Time),
    Column("quiet_end", Time),
    Column("time_zone", Text, nullable=False),
    Column("language", Text, nullable=False),
    _ts("updated_at"),
)

push_tokens = Table(
    "push_tokens",
    metadata,
    Column("token", Text, primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("platform", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("app_version", Text),
    Column("active", Boolean, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
)


# --- 0110: trained models (issue #16, training jobs) ------------------------------------

trained_models = Table(
    "trained_models",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("trigger_word", Text, nullable=False),
    Column("base_model", Text, nullable=False),
    Column("weights_key", Text, nullable=False),
    Column("weights_bytes", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("thumbnail_key", Text),
    Column("photo_set_id", Uuid, ForeignKey("photo_sets.id")),
    Column("job_id", Uuid, ForeignKey("jobs.id")),
    _ts("created_at"),
    _ts("updated_at"),
)


# --- 0400: trust and safety (issue #19) --------------------------------------------------

#: refund news about a transaction nobody had claimed yet: a later claim is refused
early_revocations = Table(
    "early_revocations",
    metadata,
    Column("store", Text, primary_key=True),
    Column("transaction_id", Text, primary_key=True),
    Column("original_transaction_id", Text),
    Column("reason", Text, nullable=False),
    Column("reversed", Boolean, nullable=False),
    _ts("occurred_at"),
    _ts("recorded_at"),
)


# --- 0200: social (issue #17) ----------------------------------------------------------

posts = Table(
    "posts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("asset_id", Uuid, nullable=False),
    Column("media_kind", Text, nullable=False),
    Column("storage_key", Text, nullable=False),
    Column("poster_key", Text),
    Column("content_type", Text, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("duration_seconds", Double),
    Column("caption", Text, nullable=False),
    Column("visibility", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("share_id", Text, nullable=False),
    Column("like_count", Integer, nullable=False),
    Column("comment_count", Integer, nullable=False),
    Column("share_count", Integer, nullable=False),
    Column("score", Double, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
)

likes = Table(
    "likes",
    metadata,
    Column("post_id", Uuid, ForeignKey("posts.id"), primary_key=True),
    Column("user_id", Uuid, ForeignKey("profiles.id"), primary_key=True),
    _ts("created_at"),
)

comments = Table(
    "comments",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("post_id", Uuid, ForeignKey("posts.id"), nullable=False),
    Column("user_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("body", Text, nullable=False),
    Column("state", Text, nullable=False),
    _ts("created_at"),
)

blocks = Table(
    "blocks",
    metadata,
    Column("blocker_id", Uuid, ForeignKey("profiles.id"), primary_key=True),
    Column("blocked_id", Uuid, ForeignKey("profiles.id"), primary_key=True),
    _ts("created_at"),
)

POSTS_ASSET_KEY = "posts_asset_key"
PROFILES_USERNAME_KEY = "profiles_username_key"


# --- 0410: moderation (issue #19) ---------------------------------------------------------

moderation_rules = Table(
    "moderation_rules",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("pattern", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("action", Text, nullable=False),
    _ts("updated_at"),
)

moderation_strikes = Table(
    "moderation_strikes",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("reason", Text, nullable=False),
    Column("surface", Text, nullable=False),
    Column("reference", Text),
    _ts("created_at"),
)


# --- 0210: reports, the moderators' audit log (issue #17) --------------------------------
# (0210 also adds profiles.suspended_at and profiles.erased_at, timestamptz, nullable)

reports = Table(
    "reports",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("reporter_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("target_kind", Text, nullable=False),
    Column("target_id", Uuid, nullable=False),
    Column("target_user_id", Uuid, nullable=False),
    Column("reason", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("action", Text),
    Column("resolved_by", Uuid),
    _ts("resolved_at", nullable=True),
    _ts("created_at"),
)

moderation_audit_log = Table(
    "moderation_audit_log",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("actor_id", Uuid),
    Column("action", Text, nullable=False),
    Column("target_kind", Text, nullable=False),
    Column("target_id", Uuid, nullable=False),
    Column("report_id", Uuid, ForeignKey("reports.id")),
    Column("note", Text, nullable=False),
    _ts("created_at"),
)
