"""tools/pip_sources.py: uv gets the package sources pip is configured with (the Makefile's installs)."""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys

from _support import ROOT

SCRIPT = ROOT / "tools" / "pip_sources.py"
spec = importlib.util.spec_from_file_location("pip_sources", SCRIPT)
pip_sources = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pip_sources)


def test_pip_settings_become_uv_options_the_environment_first():
    settings = {
        "global.extra-index-url": "file:///opt/a/simple file:///opt/b/simple",
        "global.find-links": "/opt/ignored",
        ":env:.find-links": "/opt/wheels",
        "install.constraint": "/etc/pip-constraints.txt",
        "global.constraint": "/etc/ignored.txt",
        "global.cert": "/etc/ssl/certs/ca.crt",  # not a source: uv reads SSL_CERT_FILE itself
    }
    assert pip_sources.uv_options(settings) == [
        "--extra-index-url", "file:///opt/a/simple",
        "--extra-index-url", "file:///opt/b/simple",
        "--find-links", "/opt/wheels",
        "--constraint", "/etc/pip-constraints.txt",
        "--index-strategy", "unsafe-best-match",
    ]  # fmt: skip
    assert pip_sources.uv_options({"global.index-url": "https://mirror/simple"}) == [
        "--default-index",
        "https://mirror/simple",
    ]
    assert pip_sources.uv_options({}) == []


def test_the_script_prints_what_this_machines_pip_says(tmp_path):
    """Run as the Makefile runs it, with pip's settings given by environment variables only."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_CONFIG_FILE": "/dev/null"}
    env["PIP_FIND_LINKS"] = str(tmp_path / "wheels")
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert shlex.split(done.stdout) == [
        "--find-links",
        str(tmp_path / "wheels"),
        "--index-strategy",
        "unsafe-best-match",
    ]
