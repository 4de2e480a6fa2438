"""The control-room console (issue 13): one process that subscribes to the alert feed with
``edge.feed.client.Listener``, stores what it receives (SQLAlchemy Core: SQLite WAL or
PostgreSQL) and serves the live queue, stations, history and statistics pages."""
