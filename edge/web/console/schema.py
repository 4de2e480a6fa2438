"""The console database (SQLAlchemy Core): the same tables on SQLite (WAL) and PostgreSQL.

feed_messages / feed_positions: what ``edge.feed.client.Listener`` needs to deliver every message
once across restarts (its Store interface). alerts / screenings: one row per person and kind
(``event_id``), updated by new/update/end messages. images: JPEG frames of the newest message that
carried them. audit: append-only trail of every change (never updated or deleted). stations: the
last status and when each gateway was last heard. changes: an increasing id per change, which the
pages follow (server-sent events, ``Last-Event-ID``) to stay in step with the store.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import event

metadata = sa.MetaData()
READ_ONLY = "thermal_edge_read_only"  # execution option: a read transaction (SQLite: plain BEGIN)

feed_messages = sa.Table(
    "feed_messages", metadata,
    sa.Column("msg_id", sa.String(200), primary_key=True),
    sa.Column("publisher_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("station_id", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(200)),
    sa.Column("time_utc", sa.String(40), nullable=False),
    sa.Column("received_unix_s", sa.Float, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("feed_messages_stream", "publisher_id", "kind", "epoch", "seq"),
)

feed_positions = sa.Table(
    "feed_positions", metadata,
    sa.Column("publisher_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
)


def _event_columns() -> list[sa.Column]:
    return [
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("person_key", sa.String(200), nullable=False),  # publisher-epoch-track: joins alert and screening
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("publisher_id", sa.String(64), nullable=False),
        sa.Column("track_id", sa.Integer, nullable=False),
        sa.Column("first_time_utc", sa.String(40), nullable=False),
        sa.Column("time_unix_s", sa.Float, nullable=False),  # measurement time of the first message
        sa.Column("last_time_utc", sa.String(40), nullable=False),
        sa.Column("received_unix_s", sa.Float, nullable=False),  # when the console first had it
        sa.Column("last_type", sa.String(8), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("n_messages", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("core_temp_c", sa.Float),
        sa.Column("skin_temp_c", sa.Float),
        sa.Column("uncertainty_c", sa.Float),
        sa.Column("threshold_c", sa.Float),
        sa.Column("mask", sa.String(8), nullable=False),
        sa.Column("mask_conf", sa.Float, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("n_frames", sa.Integer, nullable=False),
    ]


alerts = sa.Table(
    "alerts", metadata, *_event_columns(),
    sa.Column("images", sa.String(64), nullable=False, default=""),  # comma list of stored image names
    sa.Column("images_deleted", sa.Boolean, nullable=False, default=False),  # by the retention setting
    sa.Column("state", sa.String(8), nullable=False, default="open"),  # open / taken / closed
    sa.Column("taken_by", sa.String(64)),
    sa.Column("taken_unix_s", sa.Float),
    sa.Column("secondary_c", sa.Float),
    sa.Column("secondary_site", sa.String(16)),
    sa.Column("outcome", sa.String(24)),
    sa.Column("note", sa.Text),
    sa.Column("closed_by", sa.String(64)),
    sa.Column("closed_unix_s", sa.Float),
    sa.Column("version", sa.Integer, nullable=False, default=1),  # optimistic locking of operator changes
    sa.Index("alerts_time", "time_unix_s"),
    sa.Index("alerts_station", "station_id", "time_unix_s"),
)

screenings = sa.Table(
    "screenings", metadata, *_event_columns(),
    sa.Index("screenings_time", "time_unix_s"),
    sa.Index("screenings_station", "station_id", "time_unix_s"),
)

images = sa.Table(
    "images", metadata,
    sa.Column("event_id", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("received_unix_s", sa.Float, nullable=False),
)

audit = sa.Table(
    "audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(200), nullable=False, index=True),
    sa.Column("at_unix_s", sa.Float, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),  # user name, or 'station <id>' for feed messages
    sa.Column("action", sa.String(24), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # one readable line
)

stations = sa.Table(
    "stations", metadata,
    sa.Column("station_id", sa.String(64), primary_key=True),
    sa.Column("publisher_id", sa.String(64), nullable=False),
    sa.Column("heard_unix_s", sa.Float),
    sa.Column("heartbeat_s", sa.Float),
    sa.Column("status", sa.Text),  # JSON of the last status message
    sa.Column("status_unix_s", sa.Float),
)

changes = sa.Table(
    "changes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at_unix_s", sa.Float, nullable=False),
    sa.Column("topic", sa.String(16), nullable=False),  # alert / station
    sa.Column("key", sa.String(200), nullable=False),
)


def make_engine(url: str, busy_timeout_s: float = 5.0) -> sa.Engine:
    """An engine for ``url``; SQLite files get WAL, synchronous=NORMAL and a busy timeout. Creates the tables."""
    if url.startswith("sqlite"):
        from pathlib import Path

        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the ingest, nor it them
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL: survives a process crash
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:
            # Writers take the write lock up front (BEGIN IMMEDIATE): a deferred transaction that
            # upgrades from read to write fails at once with "database is locked" instead of waiting.
            # Readers issue no BEGIN at all: each statement reads its own WAL snapshot (autocommit).
            if not conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    metadata.create_all(engine)
    return engine
