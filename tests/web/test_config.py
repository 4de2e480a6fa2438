"""console.toml: the committed example is valid and complete; errors name the file and the key."""
from __future__ import annotations

import subprocess
import sys

import pytest

from edge.config import ConfigError, example_toml
from edge.paths import REPO_ROOT
from edge.web.console.config import ConsoleConfig, load_console_config

EXAMPLE = REPO_ROOT / "config" / "console.example.toml"


def test_example_is_valid_and_up_to_date():
    cfg = load_console_config(EXAMPLE)
    assert cfg.web.host == "127.0.0.1" and cfg.store.url is None
    assert example_toml({}, ConsoleConfig).strip() in EXAMPLE.read_text(), "regenerate config/console.example.toml"


@pytest.mark.parametrize("text, error", [
    ("[console]\nstale_after_s = 1\n", "c.toml: console.stale_after_s: must be >= 5.0 (got 1)"),
    ("[web]\nport = 0\n", "c.toml: web.port: must be >= 1"),
    ("[web]\ntls_cert = 'a.pem'\n", "web.tls_cert and web.tls_key go together"),
    ("[feed]\nendpoints = []\n", "c.toml: feed.endpoints:"),
    ("[store]\nsqlite = 'x'\n", "c.toml: store.sqlite: unknown key"),
    ("[web\n", "c.toml: invalid TOML"),
])
def test_errors_name_file_and_key(tmp_path, text, error):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=error.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_console_config(p)


def test_relative_paths_follow_the_config_file(tmp_path):
    p = tmp_path / "sub" / "c.toml"
    p.parent.mkdir()
    p.write_text("[web]\nusers_file = 'u.txt'\n[store]\nsqlite_path = 'db/c.sqlite'\n")
    cfg = load_console_config(p)
    assert cfg.web.users_file == str(tmp_path / "sub" / "u.txt")
    assert cfg.store.database_url == f"sqlite:///{tmp_path / 'sub' / 'db' / 'c.sqlite'}"


@pytest.mark.slow
def test_cli_refuses_a_public_bind_without_tls(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[web]\nhost = '0.0.0.0'\n")
    r = subprocess.run([sys.executable, "-m", "edge.cli", "console", "--config", str(p)], capture_output=True,
                       text=True, cwd=REPO_ROOT, timeout=60)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: web.host=0.0.0.0 is not loopback and no TLS is configured")
    assert "reverse proxy" in line and "tls_cert" in line


@pytest.mark.slow
def test_cli_adduser(tmp_path):
    users = tmp_path / "users.txt"
    r = subprocess.run([sys.executable, "-m", "edge.cli", "console", "adduser", "ann", "--users", str(users),
                        "--role", "admin", "--password-stdin"], input="a long password\n", capture_output=True,
                       text=True, cwd=REPO_ROOT, timeout=60)
    assert r.returncode == 0 and "added ann (admin)" in r.stdout
    r = subprocess.run([sys.executable, "-m", "edge.cli", "console", "adduser", "ann", "--users", str(users),
                        "--password-stdin"], input="short\n", capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert r.returncode == 2 and "error: password too short" in r.stderr
