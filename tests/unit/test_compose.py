"""The deployment files, checked without a container engine.

``docker-compose config`` (Debian's docker-compose) validates and normalises the compose file;
the Dockerfiles are parsed for the basics (non-root user, health check, entry point); the demo
config loads with the relay's own loader and points at the compose services; nginx checks its
own config with ``nginx -t``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from relay.config import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = {"relay", "camera1", "camera2", "nginx-rtmp"}


def _require(command: str, package: str) -> str:
    path = shutil.which(command)
    if path is None:
        pytest.fail(f"{command} is missing: install Debian's {package} package "
                    "(scripts/system-deps.sh does)")
    return path


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as ``docker-compose config`` normalises it, as a dict."""
    command = _require("docker-compose", "docker-compose")
    done = subprocess.run([command, "-f", str(COMPOSE), "config"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, f"docker-compose config failed:\n{done.stderr}"
    # docker-compose is a Python program of Debian's python3, whose yaml module reads its output
    interpreter = Path(command).read_text(errors="replace").splitlines()[0].removeprefix("#!")
    as_json = subprocess.run(
        [interpreter.strip(), "-c",
         "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
        input=done.stdout, capture_output=True, text=True, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    return json.loads(as_json.stdout)


def dockerfile(path: Path) -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per build stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        assert stages, f"{path.name}: {instruction} before FROM"
        stages[-1].append((instruction.upper(), " ".join(args.split())))
    return stages


def last(stage: list[tuple[str, str]], instruction: str) -> str | None:
    found = [args for ins, args in stage if ins == instruction]
    return found[-1] if found else None


def test_compose_has_the_four_services(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    relay = services["relay"]
    assert relay["command"] == ["run", "--config", "/etc/relay/relay.toml", "--workers", "2"]
    assert any(v.startswith(f"{ROOT}/deploy/relay.toml:/etc/relay/relay.toml")
               for v in relay["volumes"]), relay["volumes"]
    assert {"published": 8080, "target": 8080} in relay["ports"]
    assert set(relay["depends_on"]) == {"camera1", "camera2", "nginx-rtmp"}
    for name in ("camera1", "camera2"):
        assert services[name]["command"] == ["camera", "--listen", "0.0.0.0:8554"]
        assert services[name]["image"] == relay["image"]  # the same image, its own service
    for name in ("relay", "camera1", "camera2"):
        assert services[name]["build"] == {"context": str(ROOT), "dockerfile": "Dockerfile"}
    nginx = services["nginx-rtmp"]
    assert (ROOT / nginx["build"]["dockerfile"]).is_file()
    assert {"published": 1935, "target": 1935} in nginx["ports"]


def test_demo_config_points_at_the_compose_services(
    compose: dict, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAY_API_TOKEN", "not-used-by-the-demo-config")
    config = load_config(ROOT / "deploy" / "relay.toml")
    assert config.server.http == ("0.0.0.0", 8080)  # the port compose publishes and EXPOSE names
    hls_volume = [v for v in compose["services"]["relay"]["volumes"] if v.startswith("hls:")]
    assert hls_volume and hls_volume[0].split(":")[1] == str(config.server.hls_dir)
    sources = {s.name: s.source.url for s in config.streams}
    assert sources == {"camera1": "rtsp://camera1:8554/demo", "camera2": "rtsp://camera2:8554/demo"}
    for stream in config.streams:
        assert stream.enabled and stream.hls
        assert [(u.host, u.port, u.app) for u in stream.rtmp] == [("nginx-rtmp", 1935, "live")]
        assert stream.rtmp[0].host in compose["services"]


def test_relay_dockerfile_basics() -> None:
    stages = dockerfile(ROOT / "Dockerfile")
    final = stages[-1]
    base = final[0][1]
    assert base.startswith("debian:bookworm") or base.startswith("python:3.11-slim-bookworm")
    user = last(final, "USER")
    assert user is not None and user.split(":")[0] not in ("root", "0"), "runs as root"
    health = last(final, "HEALTHCHECK")
    assert health is not None and "/healthz" in health and ":8080/" in health
    assert last(final, "EXPOSE") == "8080"
    assert last(final, "ENTRYPOINT") == '["relay"]'
    assert json.loads(last(final, "CMD") or "null") == ["run", "--config", "/etc/relay/relay.toml"]
    # the USER comes after every RUN that needs root, and before the entry point
    kinds = [ins for ins, _ in final]
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")
    # hls.js comes from the lock file in a build stage; node never reaches the final image
    assert any("npm ci" in args for stage in stages[:-1] for ins, args in stage if ins == "RUN")
    assert not any("npm" in args for ins, args in final if ins == "RUN")
    assert any("pip install" in args for stage in stages for ins, args in stage if ins == "RUN")


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "web/node_modules"} <= ignored


def test_nginx_rtmp_image_and_config(tmp_path: Path) -> None:
    stages = dockerfile(ROOT / "deploy" / "nginx-rtmp.Dockerfile")
    final = stages[-1]
    assert final[0][1].startswith("debian:bookworm")
    assert "libnginx-mod-rtmp" in (last(final, "RUN") or "")
    user = last(final, "USER")
    assert user is not None and user not in ("root", "0")
    conf = (ROOT / "deploy" / "nginx-rtmp.conf").read_text()
    assert "COPY deploy/nginx-rtmp.conf" in " ".join(f"{i} {a}" for i, a in final)
    assert re.search(r"application live \{[^}]*live on;", conf)
    # nginx -t on a copy whose writable paths point into tmp_path (the test never writes /var)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is missing: install Debian's nginx and libnginx-mod-rtmp packages")
    copy = tmp_path / "nginx-rtmp.conf"
    copy.write_text(conf.replace("/var/lib/nginx-rtmp", str(tmp_path)))
    done = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", "stderr", "-c", str(copy)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
