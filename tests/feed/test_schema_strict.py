"""The published schema compiles in a second, strict JSON Schema 2020-12 validator: ajv in strict
mode (unknown keywords, e.g. OpenAPI's `discriminator`, are errors there, while Python's
jsonschema ignores them). Real published messages validate; broken ones do not.

ajv comes from npm: $THERMAL_EDGE_AJV_DIR (a folder with node_modules/ajv), else
~/.cache/thermal-edge/ajv-<version>, installed there on first use with `npm install`. Without
node, npm or the registry the test skips and says why."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.feed.messages import KINDS

from .test_messages import committed_schema, published  # noqa: F401 (fixture)

AJV_VERSION = "8.20.0"

NODE_SCRIPT = r"""
const Ajv2020 = require("ajv/dist/2020");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const ajv = new Ajv2020({strict: true, strictSchema: true, strictNumbers: true, strictTypes: true,
                         strictTuples: true, strictRequired: true, allErrors: true, logger: false});
let validate;
try { validate = ajv.compile(input.schema); }
catch (e) { console.log(JSON.stringify({compiled: false, error: e.message})); process.exit(0); }
const results = input.bodies.map(b => validate(b) ? null : ajv.errorsText(validate.errors));
console.log(JSON.stringify({compiled: true, results}));
"""


def ajv_modules() -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the strict ajv check needs it (apt install nodejs npm)")
    env_dir = os.environ.get("THERMAL_EDGE_AJV_DIR")
    folder = Path(env_dir) if env_dir else Path.home() / ".cache" / "thermal-edge" / f"ajv-{AJV_VERSION}"
    modules = folder / "node_modules"
    if (modules / "ajv" / "package.json").exists():
        return modules
    if env_dir or shutil.which("npm") is None:
        pytest.skip(f"ajv not found in {modules} and npm is not available to install it")
    try:
        proc = subprocess.run(["npm", "install", "--prefix", str(folder), f"ajv@{AJV_VERSION}", "--no-audit",
                               "--no-fund"], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip("npm install ajv timed out (no registry access?)")
    if proc.returncode != 0 or not (modules / "ajv").exists():
        pytest.skip(f"npm install ajv@{AJV_VERSION} failed (offline?): {proc.stderr.strip()[-200:]}")
    return modules


def ajv(schema: dict, bodies: list[dict]) -> dict:
    modules = ajv_modules()
    proc = subprocess.run(["node", "-e", NODE_SCRIPT], input=json.dumps({"schema": schema, "bodies": bodies}),
                          capture_output=True, text=True, timeout=60, env={**os.environ, "NODE_PATH": str(modules)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_schema_compiles_in_strict_ajv_and_agrees_on_real_messages(published):  # noqa: F811
    bodies = [json.loads(frames[1]) for frames in published]
    assert {b["kind"] for b in bodies} == set(KINDS)  # every kind, as a real publisher sends it
    alert = next(b for b in bodies if b["kind"] == "alert")
    broken = [
        {**alert, "verdict": {**alert["verdict"], "status": "fine"}},
        {**alert, "kind": "gossip"},
        {**alert, "time_utc": "yesterday"},
        {k: v for k, v in alert.items() if k != "msg_id"},
    ]
    out = ajv(committed_schema(), bodies + broken)
    assert out["compiled"], f"strict ajv rejects the schema: {out.get('error')}"
    good, bad = out["results"][:len(bodies)], out["results"][len(bodies):]
    assert good == [None] * len(bodies), good
    assert all(r is not None for r in bad), bad


def test_strict_ajv_rejects_the_openapi_discriminator():
    """The check has teeth: the keyword pydantic adds (and the old schema carried) fails strict ajv."""
    schema = {**committed_schema(), "discriminator": {"propertyName": "kind", "mapping": {}}}
    out = ajv(schema, [])
    assert not out["compiled"] and "discriminator" in out["error"]
