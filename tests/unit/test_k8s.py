"""deploy/k8s/: every manifest valid against the Kubernetes schemas (kubernetes-validate ships
them: no cluster, no network), and the pieces agree with each other and with the relay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from relay.cli import main
from relay.config import load_config
from relay.shards import parse_shard

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VERSION = "1.30.0"
"""The oldest Kubernetes still widely run that the manifests must suit."""


def _documents() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_is_valid(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, VERSION, strict=True)  # raises, naming the field


def test_a_wrong_field_is_refused() -> None:
    """The validation can fail: a misspelt field and a wrong type are errors."""
    statefulset = _documents()["StatefulSet"]
    bad = {**statefulset, "spec": {**statefulset["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSION, strict=True)
    bad = {**statefulset, "spec": {**statefulset["spec"], "replicas": "three"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSION, strict=True)


def test_pieces_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = _documents()
    assert set(docs) == {"ConfigMap", "Service", "StatefulSet"}
    statefulset, service, configmap = docs["StatefulSet"], docs["Service"], docs["ConfigMap"]
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]

    # each pod's shard comes from its name; N is the replica count
    shard = args[args.index("--shard") + 1]
    assert shard == f"$(POD_NAME)/{spec['replicas']}"
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        container["env"])
    last_pod = f"{statefulset['metadata']['name']}-{spec['replicas'] - 1}"
    assert parse_shard(shard.replace("$(POD_NAME)", last_pod)) == (spec["replicas"] - 1,
                                                                   spec["replicas"])
    # --workers matches the CPU the pod gets (a container sees the host's cores)
    assert args[args.index("--workers") + 1] == container["resources"]["limits"]["cpu"]

    # the Service finds the pods and is the StatefulSet's governing service
    assert spec["serviceName"] == service["metadata"]["name"]
    labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in [p["name"] for p in container["ports"]]

    # the config the pods mount is a relay.toml that loads, listening where the probes look
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_volume = next(n for n, v in volumes.items() if "configMap" in v)
    assert volumes[config_volume]["configMap"]["name"] == configmap["metadata"]["name"]
    assert args[args.index("--config") + 1] == f"{mounts[config_volume]}/relay.toml"
    toml = tmp_path / "relay.toml"
    toml.write_text(configmap["data"]["relay.toml"])
    config = load_config(toml)
    assert config.server.http == ("0.0.0.0", container["ports"][0]["containerPort"])
    assert str(config.server.hls_dir) in mounts.values()
    assert main(["run", "--config", str(toml), "--check", "--shard",
                 f"{last_pod}/{spec['replicas']}"]) == 0
    assert "(shard " in capsys.readouterr().out
