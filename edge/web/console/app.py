"""Assemble and run the console: store, feed subscriber, web app, retention task."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import zmq
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette

from edge.errors import UserError
from edge.feed.security import ClientKeys, KeyFileError
from edge.web.console.config import ConsoleConfig
from edge.web.console.ingest import Ingest
from edge.web.console.live import Notifier
from edge.web.console.routes import console_routes
from edge.web.console.schema import make_engine
from edge.web.console.store import ConsoleStore
from edge.web.server import build_app, check_bind, make_templates, serve

log = logging.getLogger(__name__)

CONSOLE_DIR = Path(__file__).resolve().parent
RETENTION_EVERY_S = 600.0
CHANGES_KEEP_S = 7 * 86400.0  # a page older than this reloads instead of replaying changes


def open_store(cfg: ConsoleConfig) -> ConsoleStore:
    try:
        return ConsoleStore(make_engine(cfg.store.database_url, cfg.store.busy_timeout_s))
    except SQLAlchemyError as e:
        raise UserError(f"store: cannot open {cfg.store.url or cfg.store.sqlite_path}: "
                        f"{str(e).splitlines()[0][:200]}") from None
    except ModuleNotFoundError as e:
        raise UserError(f"store.url needs the {e.name!r} driver: pip install 'thermal-edge[postgres]'") from None


def client_keys(cfg: ConsoleConfig) -> ClientKeys | None:
    f = cfg.feed
    if f.client_secret_key is None and f.server_public_key is None:
        return None
    if f.client_secret_key is None or f.server_public_key is None:
        raise UserError("feed.client_secret_key and feed.server_public_key go together (CURVE)")
    keys = ClientKeys(Path(f.client_secret_key), Path(f.server_public_key))
    try:
        keys.own()
        keys.server_public()
    except KeyFileError as e:
        raise UserError(str(e)) from None
    return keys


def build_console_app(cfg: ConsoleConfig, store: ConsoleStore, ingest: Ingest | None,
                      notifier: Notifier) -> Starlette:
    """The web app; starts ``ingest`` (if given) and the retention task with the server, stops them after."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        notifier.bind(asyncio.get_running_loop())
        if ingest is not None:
            ingest.start()
        task = asyncio.create_task(_retention(store, cfg))
        try:
            yield
        finally:
            task.cancel()
            if ingest is not None:
                await asyncio.to_thread(ingest.stop)

    templates = make_templates(CONSOLE_DIR / "templates")
    app = build_app(cfg.web, console_routes(), templates, lifespan=lifespan,
                    state={"store": store, "ingest": ingest, "notifier": notifier, "console_cfg": cfg})
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    app.router.routes.insert(0, Mount("/console-static", StaticFiles(directory=str(CONSOLE_DIR / "static"))))
    return app


async def _retention(store: ConsoleStore, cfg: ConsoleConfig) -> None:
    while True:
        try:
            await asyncio.to_thread(store.prune_images, cfg.console.image_retention_days)
            await asyncio.to_thread(store.prune_changes, CHANGES_KEEP_S)
        except SQLAlchemyError as e:
            log.error("retention: database error (retried in %.0f s): %s", RETENTION_EVERY_S,
                      str(e).splitlines()[0][:200])
        await asyncio.sleep(RETENTION_EVERY_S)


def run_console(cfg: ConsoleConfig, *, log_level: str = "info") -> None:
    """Check the bind, open the store, subscribe, serve until SIGINT/SIGTERM."""
    check_bind(cfg.web)
    keys = client_keys(cfg)
    store = open_store(cfg)
    ctx = zmq.Context()
    notifier = Notifier()
    try:
        try:
            ingest = Ingest(ctx, store, cfg.feed.endpoints, catchup=cfg.feed.catchup, keys=keys,
                            request_timeout_s=cfg.feed.request_timeout_s, notify=notifier.notify_threadsafe)
        except ValueError as e:
            raise UserError(f"feed: {e}") from None
        app = build_console_app(cfg, store, ingest, notifier)
        users = app.state.users.count()
        log.info("console on %s (store %s, %d user(s)); subscribing to %s", cfg.web.url,
                 cfg.store.url or cfg.store.sqlite_path, users, ", ".join(cfg.feed.endpoints))
        if users == 0:
            log.warning("no users in %s: create one with `thermal-edge console adduser NAME --role operator`",
                        cfg.web.users_file)
        serve(app, cfg.web, log_level=log_level)
    finally:
        ctx.term()
        store.engine.dispose()
