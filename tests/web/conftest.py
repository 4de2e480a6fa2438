"""Fixtures of the web tests: console stores on SQLite and on a real throwaway PostgreSQL cluster,
a console process on a random port, and headless Chromium (Debian's, through Playwright)."""
from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import pytest

from edge.paths import REPO_ROOT
from edge.web.console.schema import make_engine
from edge.web.console.store import ConsoleStore
from tests.support import free_port  # noqa: F401 (also imported from here by the browser tests)

# starlette 1.x nags about httpx in its TestClient (once, at import); the client works and is what we pin
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import starlette.testclient  # noqa: F401

def _pg_bin() -> Path:
    """The newest Debian PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin), or $THERMAL_EDGE_PG_BIN."""
    if os.environ.get("THERMAL_EDGE_PG_BIN"):
        return Path(os.environ["THERMAL_EDGE_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
CHROMIUM = Path(os.environ.get("THERMAL_EDGE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "operator password"


# --- PostgreSQL ---------------------------------------------------------------------------------

class PgCluster:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl) in a temp folder, trust auth on loopback.
    Postgres refuses to run as root: as root, the cluster runs as the 'postgres' system user."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="te-pg-"))
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run the server as") from None
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self._db = itertools.count(1)

    def _run(self, *args: str) -> None:
        r = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")

    def start(self) -> PgCluster:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-l", str(self.dir / "log"),
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        import sqlalchemy as sa

        name = f"console_{next(self._db)}"
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            c.exec_driver_sql(f"CREATE DATABASE {name}")
        engine.dispose()
        return self.url(name)


@pytest.fixture(scope="session")
def pg_cluster():
    """A running PostgreSQL server for this test session, or skip saying why it cannot start."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql; "
                    "or set THERMAL_EDGE_PG_BIN)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg not installed (pip install 'thermal-edge[test]')")
    try:
        cluster = PgCluster().start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot start a throwaway PostgreSQL cluster: {e}")
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])  # a server start per test: slow
def store_url(request, tmp_path) -> str:
    """A fresh, empty console database: SQLite file, then a database on the PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'console.sqlite'}"
    return request.getfixturevalue("pg_cluster").new_database()


@pytest.fixture
def store(store_url):
    engine = make_engine(store_url, busy_timeout_s=2.0)
    yield ConsoleStore(engine)
    engine.dispose()


# --- a console process --------------------------------------------------------------------------

def write_console_config(folder: Path, endpoints: list[str], catchup: list[str], *, port: int,
                         store_url: str | None = None, stale_after_s: float = 120.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    store = f'url = "{store_url}"' if store_url else 'sqlite_path = "console.sqlite"'
    cfg = folder / "console.toml"
    cfg.write_text(f"""
[web]
host = "127.0.0.1"
port = {port}
users_file = "users.txt"
session_secret_file = "session.secret"
[feed]
endpoints = {endpoints!r}
catchup = {catchup!r}
request_timeout_s = 0.5
[store]
{store}
[console]
stale_after_s = {stale_after_s}
silent_red_after_s = 5
""".replace("'", '"'))
    return cfg


class ConsoleProcess:
    """`python -m edge.cli console --config FILE` as a subprocess (killable, restartable)."""

    def __init__(self, config: Path, port: int) -> None:
        self.config, self.port = config, port
        self.proc: subprocess.Popen | None = None
        self.log = config.parent / "console.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def adduser(self, name: str, role: str = "operator", password: str = PASSWORD) -> None:
        r = subprocess.run([sys.executable, "-m", "edge.cli", "console", "adduser", name, "--role", role,
                            "--config", str(self.config), "--password-stdin"], input=password + "\n",
                           capture_output=True, text=True, cwd=REPO_ROOT, env=_env(), timeout=60)
        assert r.returncode == 0, r.stderr

    def start(self, timeout_s: float = 30.0) -> ConsoleProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "console", "--config", str(self.config)],
                                     cwd=REPO_ROOT, env=_env(), stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"console exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"console did not start within {timeout_s} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


# --- the browser --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium():
    """Headless Debian Chromium driven by Playwright, or skip saying why."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium; or set THERMAL_EDGE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright not installed (pip install 'thermal-edge[test]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def browser_login(page, base_url: str, user: str, password: str = PASSWORD) -> None:
    page.goto(base_url + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(base_url) + r"/(\?.*)?$"))


class TcpRelay:
    """A loopback TCP relay to the console: ``cut()`` drops every connection and refuses new ones
    (a network cut between browser and console), ``restore()`` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        import threading

        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._server: socket.socket | None = None
        self.restore()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        import threading

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._conns.clear()
