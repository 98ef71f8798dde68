"""What the processes load at start-up: every module imported is resident memory for the process's
life (trio.testing pulls in pytest when it is installed: 9 MiB of the media process's RSS)."""

import subprocess
import sys

TEST_ONLY = ("trio.testing", "pytest", "_pytest", "hypothesis")


def loaded_by(*modules: str) -> set[str]:
    """The modules a fresh interpreter holds after importing ``modules``."""
    code = f"import sys, {', '.join(modules)}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_media_and_web_processes_load_no_test_framework() -> None:
    for modules in (("relay.cli", "relay.app"), ("web.__main__",)):
        loaded = loaded_by(*modules)
        assert [name for name in TEST_ONLY if name in loaded] == [], modules
