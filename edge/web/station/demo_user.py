"""`python -m edge.web.station.demo_user USERS_FILE`: make sure the demo login of
config/station-web-demo.toml exists (user ``demo``, role viewer, a random password kept next to
the users file) and print how to log in. For the recording-backed demo only: a real station's
users are added with `thermal-edge console adduser`."""
from __future__ import annotations

import secrets
import sys
from pathlib import Path

from edge.web.auth import Users

DEMO_USER = "demo"


def ensure_demo_user(users_file: Path) -> str:
    """The demo user's password (created with the user on first use)."""
    pw_file = users_file.with_name(users_file.name + ".demo-password")
    users = Users(users_file)
    if pw_file.is_file() and users.get(DEMO_USER) is not None:
        return pw_file.read_text().strip()
    password = secrets.token_urlsafe(9)
    users.set(DEMO_USER, "viewer", password)
    pw_file.write_text(password + "\n")
    pw_file.chmod(0o600)
    return password


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "var/station-web-users.txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    pw = ensure_demo_user(path)
    print(f"station web demo: log in as '{DEMO_USER}' with password '{pw}' (kept in {path}.demo-password)")
