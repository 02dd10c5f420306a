"""Baseline: every table of the project database, created or adopted.

Rendered from the stores' tables (xiaoer.core.db.metadata) when the baseline was cut;
frozen: later schema changes are revisions of their own (xiaoer migrate --new).
upgrade() creates each table, or brings the table of a release before migrations (0.1) up
to it in place, and imports that release's douyin.db and shop.db (see
xiaoer/core/migrations/baseline.py).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from xiaoer.core.migrations import baseline

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def schema(op: Any) -> None:
    op.create_table(
        "after_sales",
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("case_type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("status_words", sa.Text(), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("expected", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_after_sales")),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), server_default="agent", nullable=False),
        sa.Column("groups_json", sa.Text(), server_default="[]", nullable=False),
        sa.Column("on_shift", sa.Integer(), server_default="1", nullable=False),
        sa.Column("active", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("username", name=op.f("uq_agents_username")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "buyers",
        sa.Column("buyer_id", sa.Text(), nullable=False),
        sa.Column("is_returning", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("buyer_id", name=op.f("pk_buyers")),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_console_sessions")),
    )
    op.create_table(
        "console_settings",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_console_settings")),
    )
    op.create_table(
        "crm_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.Text(), nullable=False),
        sa.Column("delivered_at", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_outbox")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "crm_outbox_due", "crm_outbox", ["delivered_at", "next_attempt_at"], unique=False
    )
    op.create_table(
        "doudian_order_changes",
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_doudian_order_changes")),
    )
    op.create_table(
        "doudian_push_seen",
        sa.Column("msg_id", sa.Text(), nullable=False),
        sa.Column("tag", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("processed_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("msg_id", name=op.f("pk_doudian_push_seen")),
    )
    op.create_index("doudian_push_unprocessed", "doudian_push_seen", ["processed_at"], unique=False)
    op.create_table(
        "douyin_conversations",
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("conversation_short_id", sa.Text(), nullable=True),
        sa.Column("last_msg_id", sa.Text(), nullable=True),
        sa.Column("last_msg_at", sa.Float(), nullable=True),
        sa.Column("nickname", sa.Text(), nullable=True),
        sa.Column("options", sa.Text(), nullable=True),
        sa.Column("paused_until", sa.Float(), nullable=True),
        sa.Column("last_customer_at", sa.Float(), nullable=True),
        sa.Column("last_greeted_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("sender_id", name=op.f("pk_douyin_conversations")),
    )
    op.create_table(
        "douyin_deliveries",
        sa.Column("msg_id", sa.Text(), nullable=False),
        sa.Column("event_key", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("msg_id", name=op.f("pk_douyin_deliveries")),
    )
    op.create_table(
        "douyin_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_key", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("processed_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_douyin_events")),
        sa.UniqueConstraint("event_key", name=op.f("uq_douyin_events_event_key")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "douyin_events_pending", "douyin_events", ["processed_at", "sender_id"], unique=False
    )
    op.create_table(
        "douyin_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("preview", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_douyin_outbox")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "douyin_outbox_pending", "douyin_outbox", ["sent_at", "sender_id", "id"], unique=False
    )
    op.create_table(
        "douyin_sent",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("msg_id", sa.Text(), nullable=True),
        sa.Column("text_hash", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_douyin_sent")),
        sqlite_autoincrement=True,
    )
    op.create_index("douyin_sent_by_sender", "douyin_sent", ["sender_id", "sent_at"], unique=False)
    op.create_table(
        "douyin_tokens",
        sa.Column("client_key", sa.Text(), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("refresh_expires_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("client_key", name=op.f("pk_douyin_tokens")),
    )
    op.create_table(
        "event_cursor",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_cursor")),
    )
    op.create_table(
        "handoff_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.Text(), server_default="waiting", nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("group_name", sa.Text(), server_default="", nullable=False),
        sa.Column("intent", sa.Text(), server_default="", nullable=False),
        sa.Column("summary_json", sa.Text(), server_default="{}", nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("taken_at", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("in_hours", sa.Integer(), server_default="1", nullable=False),
        sa.Column("last_agent_reply_at", sa.Text(), nullable=True),
        sa.Column("announced_at", sa.Text(), nullable=True),
        sa.Column("announce_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_requests")),
        sqlite_autoincrement=True,
    )
    op.create_index("handoff_by_sender", "handoff_requests", ["sender_id", "status"], unique=False)
    op.create_index("handoff_by_status", "handoff_requests", ["status", "created_at"], unique=False)
    op.create_index(
        "uq_handoff_requests_open_sender",
        "handoff_requests",
        ["sender_id"],
        unique=True,
        sqlite_where=sa.text("status IN ('waiting', 'active')"),
        postgresql_where=sa.text("status IN ('waiting', 'active')"),
    )
    op.create_table(
        "lead_activity",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), server_default="", nullable=False),
        sa.Column("intent", sa.Text(), server_default="", nullable=False),
        sa.Column("signals", sa.Text(), server_default="", nullable=False),
        sa.Column("text", sa.Text(), server_default="", nullable=False),
        sa.Column("at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_activity")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "lead_activity_message",
        "lead_activity",
        ["sender_id", "message_id"],
        unique=True,
        sqlite_where=sa.text("message_id != ''"),
        postgresql_where=sa.text("message_id != ''"),
    )
    op.create_index("lead_activity_sender", "lead_activity", ["sender_id", "at"], unique=False)
    op.create_table(
        "lead_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_audit")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "lead_contacts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), server_default="", nullable=False),
        sa.Column("source", sa.Text(), server_default="message", nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_contacts")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_lead_contacts_kind_value")),
        sqlite_autoincrement=True,
    )
    op.create_index("lead_contacts_lead", "lead_contacts", ["lead_id"], unique=False)
    op.create_table(
        "lead_kv",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_lead_kv")),
    )
    op.create_table(
        "lead_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.Text(), server_default="", nullable=False),
        sa.Column("text", sa.Text(), server_default="", nullable=False),
        sa.Column("at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_notes")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "lead_senders",
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("sender_id", name=op.f("pk_lead_senders")),
    )
    op.create_index("lead_senders_lead", "lead_senders", ["lead_id"], unique=False)
    op.create_table(
        "leads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("category", sa.Text(), server_default="purchase", nullable=False),
        sa.Column("score", sa.Text(), server_default="cold", nullable=False),
        sa.Column("points", sa.Float(), server_default="0", nullable=False),
        sa.Column("status", sa.Text(), server_default="new", nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("source_sender_id", sa.Text(), nullable=False),
        sa.Column("source_channel", sa.Text(), server_default="", nullable=False),
        sa.Column("source_message_id", sa.Text(), server_default="", nullable=False),
        sa.Column("source_message", sa.Text(), server_default="", nullable=False),
        sa.Column("has_lead_card", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.Column("last_activity_at", sa.Text(), nullable=False),
        sa.Column("merged_into", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sqlite_autoincrement=True,
    )
    op.create_index("leads_list", "leads", ["merged_into", "created_at"], unique=False)
    op.create_table(
        "meta",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("buyer_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notifications_dedupe_key")),
        sqlite_autoincrement=True,
    )
    op.create_index("notifications_pending", "notifications", ["sent_at", "id"], unique=False)
    op.create_table(
        "offered_buttons",
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("buttons_json", sa.Text(), nullable=False),
        sa.Column("offered_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sender_id", name=op.f("pk_offered_buttons")),
    )
    op.create_table(
        "order_checks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_checks")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "order_checks_by_order", "order_checks", ["order_id", "kind", "at"], unique=False
    )
    op.create_index(
        "order_checks_by_sender", "order_checks", ["sender_id", "kind", "at"], unique=False
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("buyer_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("total_fen", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("paid_at", sa.Text(), nullable=True),
        sa.Column("shipped_at", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.Text(), nullable=True),
        sa.Column("courier", sa.Text(), nullable=True),
        sa.Column("tracking_no", sa.Text(), nullable=True),
        sa.Column("recipient_name", sa.Text(), nullable=True),
        sa.Column("recipient_phone", sa.Text(), nullable=True),
        sa.Column("recipient_address", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_orders")),
    )
    op.create_index("orders_by_buyer", "orders", ["buyer_id", "created_at"], unique=False)
    op.create_table(
        "products",
        sa.Column("product_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("fit_note", sa.Text(), nullable=True),
        sa.Column("synonyms", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_products")),
    )
    op.create_table(
        "queue_notices",
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("told_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sender_id", name=op.f("pk_queue_notices")),
    )
    op.create_table(
        "rest_inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recipient_id", sa.Text(), nullable=False),
        sa.Column("message_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rest_inbox")),
        sqlite_autoincrement=True,
    )
    op.create_index("rest_inbox_by_recipient", "rest_inbox", ["recipient_id", "id"], unique=False)
    op.create_table(
        "rest_inbox_tokens",
        sa.Column("recipient_id", sa.Text(), nullable=False),
        sa.Column("token_sha256", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("recipient_id", name=op.f("pk_rest_inbox_tokens")),
    )
    op.create_table(
        "traces",
        sa.Column("tracking_no", sa.Text(), nullable=False),
        sa.Column("time", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_index("traces_by_tracking_no", "traces", ["tracking_no", "time"], unique=False)
    op.create_table(
        "urge_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("overdue_hours", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("buyer_id", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_urge_requests")),
        sqlite_autoincrement=True,
    )
    op.create_index("urges_by_order", "urge_requests", ["order_id"], unique=False)
    op.create_table(
        "worker_leases",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_leases")),
    )
    op.create_table(
        "order_items",
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Text(), nullable=False),
        sa.Column("color", sa.Text(), nullable=True),
        sa.Column("size", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_fen", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.order_id"], name=op.f("fk_order_items_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("order_id", "seq", name=op.f("pk_order_items")),
    )
    op.create_table(
        "product_traits",
        sa.Column("product_id", sa.Text(), nullable=False),
        sa.Column("trait", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.product_id"],
            name=op.f("fk_product_traits_product_id_products"),
        ),
        sa.PrimaryKeyConstraint("product_id", "trait", name=op.f("pk_product_traits")),
    )
    op.create_table(
        "size_charts",
        sa.Column("product_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("size", sa.Text(), nullable=False),
        sa.Column("height_min", sa.Float(), nullable=False),
        sa.Column("height_max", sa.Float(), nullable=False),
        sa.Column("weight_min", sa.Float(), nullable=True),
        sa.Column("weight_max", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.product_id"], name=op.f("fk_size_charts_product_id_products")
        ),
        sa.PrimaryKeyConstraint("product_id", "seq", name=op.f("pk_size_charts")),
    )
    op.create_table(
        "variants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("product_id", sa.Text(), nullable=False),
        sa.Column("color", sa.Text(), nullable=False),
        sa.Column("size", sa.Text(), nullable=True),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("restock_at", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.product_id"], name=op.f("fk_variants_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variants")),
        sa.UniqueConstraint(
            "product_id", "color", "size", name=op.f("uq_variants_product_id_color_size")
        ),
    )


def upgrade() -> None:
    baseline.apply(schema)


def downgrade() -> None:
    raise NotImplementedError("the baseline cannot be undone: restore the database's backup")
