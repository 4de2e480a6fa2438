"""The shared web layer: users file, argon2 login, roles, session cookie flags, CSRF on every
state change, security headers, and the refusal of a non-loopback bind without TLS."""
from __future__ import annotations

import re
import stat

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from edge.errors import UserError
from edge.web import auth
from edge.web.server import WebConfig, build_app, check_bind, make_templates


@auth.csrf_protected
async def _change(request: Request):
    user = auth.require(request, "operator")
    return JSONResponse({"ok": True, "by": user.name})


async def _token(request: Request):
    return JSONResponse({"csrf": auth.csrf_token(request)})


async def _view(request: Request):
    user = auth.require(request, "viewer")
    return JSONResponse({"user": user.name})


@pytest.fixture
def app(tmp_path):
    cfg = WebConfig(users_file=str(tmp_path / "users.txt"), session_secret_file=str(tmp_path / "secret"))
    users = auth.Users(cfg.users_file)
    users.set("ann", "operator", "correct horse")
    users.set("vic", "viewer", "viewer pass")
    auth._FAILS.clear()
    return build_app(cfg, [Route("/change", _change, methods=["POST"]), Route("/view", _view), Route("/token", _token)], make_templates())


def login(client: TestClient, name: str, password: str):
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token, "next": "/view"},
                       follow_redirects=False)


def page_token(client: TestClient) -> str:
    """The CSRF token a page of this session carries."""
    return client.get("/token").json()["csrf"]


def test_users_file_is_argon2_and_private(tmp_path):
    users = auth.Users(tmp_path / "u.txt")
    assert users.set("ann", "admin", "long enough") is True
    assert users.set("ann", "viewer", "another one") is False  # replaced, not duplicated
    text = (tmp_path / "u.txt").read_text()
    assert "ann:viewer:$argon2id$" in text and "another one" not in text
    assert stat.S_IMODE((tmp_path / "u.txt").stat().st_mode) == 0o600
    assert users.verify("ann", "another one") == auth.User("ann", "viewer")
    assert users.verify("ann", "long enough") is None
    assert users.verify("nobody", "another one") is None


@pytest.mark.parametrize("name, role, password, error", [
    ("bad name!", "viewer", "long enough", "user name"),
    ("ann", "root", "long enough", "role 'root'"),
    ("ann", "viewer", "short", "too short"),
])
def test_bad_users_are_refused(tmp_path, name, role, password, error):
    with pytest.raises(UserError, match=error):
        auth.Users(tmp_path / "u.txt").set(name, role, password)


def test_malformed_users_file_names_file_and_line(tmp_path):
    p = tmp_path / "u.txt"
    p.write_text("# ok\nann:operator:$argon2id$x\nbroken line\n")
    with pytest.raises(auth.UsersFileError, match=r"u.txt:3: expected"):
        auth.Users(p).get("ann")


@pytest.mark.parametrize("role, needed, ok", [
    ("viewer", "viewer", True), ("viewer", "operator", False), ("operator", "operator", True),
    ("operator", "admin", False), ("admin", "operator", True), ("admin", "admin", True)])
def test_role_order(role, needed, ok):
    assert auth.User("x", role).can(needed) is ok


def test_login_sets_hardened_cookie_and_roles_apply(app):
    client = TestClient(app)
    r = login(client, "ann", "wrong password")
    assert r.status_code == 401 and "wrong user name or password" in r.text
    r = login(client, "ann", "correct horse")
    assert r.status_code == 303 and r.headers["location"] == "/view"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/view").json() == {"user": "ann"}

    viewer = TestClient(app)
    login(viewer, "vic", "viewer pass")
    r = viewer.post("/change", headers={"X-CSRF-Token": page_token(viewer)})
    assert r.status_code == 403 and "operator role" in r.json()["error"]


def test_csrf_required_on_every_state_change(app):
    client = TestClient(app)
    login(client, "ann", "correct horse")
    assert client.post("/change").status_code == 403  # no token
    assert client.post("/change", headers={"X-CSRF-Token": "forged"}).status_code == 403
    token = page_token(client)
    assert client.post("/change", headers={"X-CSRF-Token": token}).json() == {"ok": True, "by": "ann"}
    assert client.post("/change", data={"csrf_token": token}).status_code == 200
    # login and logout are state changes too
    assert TestClient(app).post("/login", data={"username": "ann", "password": "correct horse"}).status_code == 403
    assert auth.unprotected_posts(app.routes) == []


def test_unprotected_post_is_detected():
    async def naked(request):
        return JSONResponse({})
    assert auth.unprotected_posts([Route("/x", naked, methods=["POST"])]) == ["/x"]


def test_removed_user_is_logged_out(app, tmp_path):
    client = TestClient(app)
    login(client, "ann", "correct horse")
    assert client.get("/view").status_code == 200
    auth.Users(tmp_path / "users.txt").remove("ann")
    assert client.get("/view", headers={"accept": "application/json"}).status_code == 401
    assert client.get("/view", headers={"accept": "text/html"}, follow_redirects=False).headers["location"] \
        == "/login?next=/view"


def test_security_headers_and_no_store(app):
    r = TestClient(app).get("/login")
    assert r.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert TestClient(app).get("/static/web.js").status_code == 200


@pytest.mark.slow
def test_login_throttled_after_repeated_failures(app):
    client = TestClient(app)
    codes = [login(client, "ann", f"guess {i}").status_code for i in range(auth.MAX_FAILS_PER_MINUTE + 1)]
    assert codes[-1] == 429 and set(codes[:-1]) == {401}
    assert login(client, "ann", "correct horse").status_code == 429


def test_session_secret_persists(tmp_path):
    a = auth.load_secret(tmp_path / "s")
    assert a == auth.load_secret(tmp_path / "s") and len(a) >= 32
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o600


@pytest.mark.parametrize("host, tls, ok", [
    ("127.0.0.1", False, True), ("localhost", False, True), ("::1", False, True),
    ("0.0.0.0", False, False), ("192.168.1.5", False, False), ("0.0.0.0", True, True)])
def test_bind_needs_tls_beyond_loopback(tmp_path, host, tls, ok):
    kw = {}
    if tls:
        (tmp_path / "c.pem").write_text("x")
        (tmp_path / "k.pem").write_text("x")
        kw = dict(tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "k.pem"))
    cfg = WebConfig(host=host, **kw)
    if ok:
        check_bind(cfg)
    else:
        with pytest.raises(UserError, match="not loopback and no TLS.*reverse proxy.*tls_cert"):
            check_bind(cfg)


def test_tls_needs_both_files():
    with pytest.raises(ValueError, match="go together"):
        WebConfig(tls_cert="c.pem")
