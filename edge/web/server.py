"""The web server shared by the console and the station view: bind/TLS config, the app factory
(sessions, security headers, login, static files, templates, error pages) and the uvicorn runner.

Binding anything but loopback without TLS is refused (``check_bind``): put the process behind a
reverse proxy on the same machine, or give it a certificate and key.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from edge.errors import UserError
from edge.web import auth
from edge.web.config import WebConfig

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
SESSION_COOKIE = "thermal_edge_session"

# Content-Security-Policy: every script and style comes from this process (no CDN, no inline
# script); inline style attributes are allowed for the server-rendered SVG plots.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(cfg: WebConfig) -> None:
    """Refuse a non-loopback bind without TLS (one line saying how to fix it); check TLS files exist."""
    if not cfg.tls and not is_loopback(cfg.host):
        raise UserError(
            f"web.host={cfg.host} is not loopback and no TLS is configured: operators' passwords and face images "
            "would cross the network in clear. Either keep host=127.0.0.1 behind a reverse proxy that terminates "
            "HTTPS (nginx/caddy on the same machine), or set web.tls_cert and web.tls_key to a PEM certificate and key")
    for name in ("tls_cert", "tls_key"):
        p = getattr(cfg, name)
        if p is not None and not Path(p).is_file():
            raise UserError(f"web.{name}={p}: file not found")
    try:
        family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((cfg.host, cfg.port))
    except OSError as e:
        raise UserError(f"web.port: cannot bind {cfg.host}:{cfg.port}: {e.strerror or e} "
                        "(another console running? choose another port)") from None


def make_templates(*extra_dirs: Path) -> Jinja2Templates:
    """Jinja2 templates: the application's folders first, then the shared base (base.html, login.html)."""
    loader = ChoiceLoader([FileSystemLoader([str(d) for d in extra_dirs] + [str(TEMPLATES_DIR)])])
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.loader = loader
    templates.env.globals["csrf_token"] = auth.csrf_token
    templates.env.globals["current_user"] = auth.current_user
    return templates


class SecurityHeaders:
    """Pure ASGI middleware: CSP and friends on every response; ``no-store`` unless set."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        is_static = scope["path"].startswith("/static/")

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                have = {k.lower() for k, _ in headers}
                extra = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                         (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]
                if b"cache-control" not in have:
                    # pages show personal data: never kept by the browser or a proxy; static assets may be
                    extra.append((b"cache-control", b"private, max-age=300" if is_static else b"no-store"))
                message["headers"] = headers + [(k, v) for k, v in extra if k not in have]
            await send(message)

        await self.app(scope, receive, send_wrapper)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 401 and _wants_html(request) and request.method == "GET":
        return RedirectResponse(f"/login?next={request.url.path}", 303)
    if _wants_html(request):
        return request.app.state.templates.TemplateResponse(
            request, "error.html", {"status": exc.status_code, "detail": exc.detail}, status_code=exc.status_code)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


def build_app(cfg: WebConfig, routes: Sequence[BaseRoute], templates: Jinja2Templates, *,
              lifespan: Any = None, state: dict[str, Any] | None = None) -> Starlette:
    """A Starlette app with login/logout, /static, sessions and security headers around ``routes``.

    ``state`` entries become ``app.state`` attributes (e.g. the console's store)."""
    secret = auth.load_secret(cfg.session_secret_file)
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=secret, session_cookie=SESSION_COOKIE,
                   max_age=cfg.session_max_age_s, same_site="lax", https_only=cfg.tls),
    ]
    all_routes = [*auth.auth_routes(), Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
                  *routes]
    app = Starlette(routes=all_routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error})
    app.state.users = auth.Users(cfg.users_file)
    app.state.templates = templates
    app.state.web = cfg
    for k, v in (state or {}).items():
        setattr(app.state, k, v)
    return app


def serve(app: Starlette, cfg: WebConfig, *, log_level: str = "info") -> None:
    """Run ``app`` with uvicorn on cfg.host:cfg.port (HTTPS when configured) until SIGINT/SIGTERM."""
    import uvicorn

    check_bind(cfg)
    uvicorn.run(app, host=cfg.host, port=cfg.port, ssl_certfile=cfg.tls_cert, ssl_keyfile=cfg.tls_key,
                log_level=log_level, access_log=False, proxy_headers=False, server_header=False,
                timeout_graceful_shutdown=2)
