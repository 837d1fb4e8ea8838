"""One `mkdocs build --strict` per test session, shared by the pytest-xdist workers."""

import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._helpers import ROOT, docs_script

BUILD_TIMEOUT_S = 480
STAND_IN_PLOTS = {docs_script("example_figures").STAND_IN_ENV: "1"}
"""The gallery's plots are stand-ins in this build where they are missing (a fresh
clone): training the six examples again would double tests/examples, which trains them
and checks their plots; tests/docs/test_example_figures.py checks the rendering rule."""


@dataclass(frozen=True)
class SiteBuild:
    site: Path
    returncode: int
    output: str
    seconds: float


def _build(site: Path) -> SiteBuild:
    start = time.perf_counter()
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", **STAND_IN_PLOTS}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        env=env,
    )
    return SiteBuild(
        site, result.returncode, result.stdout + result.stderr, time.perf_counter() - start
    )


@pytest.fixture(scope="session")
def site_build(tmp_path_factory) -> SiteBuild:
    """Build the site once; under xdist the first worker builds, the others wait and reuse."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return _build(tmp_path_factory.mktemp("site") / "site")
    shared = tmp_path_factory.getbasetemp().parent  # one folder per test session
    record = shared / "docs-site-build.json"
    with open(shared / "docs-site-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not record.exists():
                build = _build(shared / "docs-site")
                record.write_text(json.dumps({**build.__dict__, "site": str(build.site)}))
            data = json.loads(record.read_text())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return SiteBuild(Path(data["site"]), data["returncode"], data["output"], data["seconds"])
