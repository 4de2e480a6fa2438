"""A replay whose thermal clock goes back: the summary names every frame not paired and why
(issue 14: 10 thermal rows going back 3 s used to give '59 pairs, 0 unpaired', no warning)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from edge.paths import REPO_ROOT

SAMPLE = REPO_ROOT / "sample_streams" / "walkthrough"


@pytest.mark.slow
@pytest.mark.skipif(not (SAMPLE / "thermal.mkv").exists(), reason="sample stream not rendered (make run)")
def test_replay_summary_counts_out_of_order_frames(tmp_path):
    stream = tmp_path / "s"
    stream.mkdir()
    for f in SAMPLE.iterdir():
        if f.name != "timestamps.csv":
            (stream / f.name).symlink_to(f.resolve())
    lines = (SAMPLE / "timestamps.csv").read_text().splitlines()
    out, n_back = [lines[0]], 0
    for row in lines[1:]:
        cam, idx, t_ns, ffc = row.split(",")
        if cam == "thermal" and 30 <= int(idx) < 40:  # 10 thermal rows 3 s back
            t_ns, n_back = str(int(t_ns) - 3_000_000_000), n_back + 1
        out.append(",".join((cam, idx, t_ns, ffc)))
    (stream / "timestamps.csv").write_text("\n".join(out) + "\n")
    assert n_back == 10
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "demo", str(stream)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = next(ln for ln in proc.stdout.splitlines() if ln.startswith("summary:"))
    m = re.search(r"pairs (\d+) \((\d+) thermal unpaired: 10 out of order\)", summary)
    assert m, summary
    assert int(m.group(1)) + int(m.group(2)) == 69  # every thermal frame accounted for
    assert proc.stderr.count("not paired: out of order") == 1, proc.stderr  # logged once
