"""deploy/: the compose files and Kubernetes manifests are valid against their schemas, agree
with the code (settings, routes, extras), and describe the fleet the README promises.

The checks live in deploy/check.py (`make deploy-check`); these tests run them and pin the
shape: two API replicas with no local workers, one worker process per GPU, secrets only from
Secrets, readiness on /ready and liveness on /health.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_check", ROOT / "deploy" / "check.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check = _load_check()


def _k8s(kind: str, name: str) -> dict[str, Any]:
    docs = (d for _, d in check.k8s_docs())
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def _container(kind: str, name: str) -> dict[str, Any]:
    (container,) = _k8s(kind, name)["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# -- the validations -------------------------------------------------------------------------


def test_compose_files_match_the_compose_specification() -> None:
    assert check.check_compose_schema() == []


def test_k8s_manifests_match_the_kubernetes_schemas() -> None:
    assert check.check_k8s_schema() == []


def test_kustomization_lists_every_manifest_and_image() -> None:
    assert check.check_kustomization() == []


def test_every_setting_named_exists_and_its_value_validates() -> None:
    assert check.check_environments() == []


def test_probe_routes_and_migration_command_exist() -> None:
    assert check.check_code_facts() == []


def test_image_extras_exist() -> None:
    assert check.check_dockerfile() == []


def test_prometheus_component_matches_the_pods() -> None:
    assert check.check_prometheus_component() == []


# -- the validations catch mistakes ----------------------------------------------------------


@pytest.mark.parametrize("version", check.K8S_VERSIONS)
def test_schema_check_rejects_an_unknown_field(version: str) -> None:
    deployment = copy.deepcopy(_k8s("Deployment", "openimagine-api"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    errors = check.k8s_errors(deployment, version)
    assert len(errors) == 1
    assert "readinesProbe" in errors[0]
    # The same verdict as kubernetes-validate's own entry point.
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)


def test_schema_check_rejects_an_unknown_kind() -> None:
    doc = {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}
    assert check.k8s_errors(doc, check.K8S_VERSIONS[-1]) == [
        "no schema for kind Deploymnet in apps/v1"
    ]


def test_compose_check_rejects_a_misspelt_key(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  api:\n    image: x\n    deploy:\n      replica: 2\n")
    errors = check.check_compose_schema((broken,))
    assert len(errors) == 1
    assert "replica" in errors[0]


def test_a_misspelt_setting_is_not_a_setting() -> None:
    names = check.settings_env_names()
    assert "OPENIMAGINE_STORE__URL" in names
    assert "OPENIMAGINE_API_KEYS" in names
    assert "OPENIMAGINE_STORE__ULR" not in names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "1"),
        ("$A-$$B", "1-$B"),
        ("${MISSING:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${A:?needed}", "1"),
    ],
)
def test_interpolate_follows_compose(text: str, expected: str) -> None:
    assert check.interpolate(text, {"A": "1", "EMPTY": ""}) == expected


def test_interpolate_refuses_a_missing_required_variable() -> None:
    with pytest.raises(KeyError, match="set it"):
        check.interpolate("${NOPE:?set it}", {})


# -- the fleet's shape -----------------------------------------------------------------------


def test_compose_runs_two_api_replicas_and_one_worker_on_postgres_and_s3() -> None:
    services = check.compose_doc(check.COMPOSE_FILES[0])["services"]
    api, worker = services["api"], services["worker"]
    assert api["deploy"]["replicas"] == 2
    assert api["command"][:1] == ["serve"]
    assert api["command"][api["command"].index("--workers") + 1] == "0"
    assert worker["command"] == ["worker", "--count", "1"]
    assert worker.get("deploy", {}).get("replicas", 1) == 1
    assert services["postgres"]["image"] == "postgres:15"
    assert "-s3" in services["seaweedfs"]["command"]
    assert "/health" in " ".join(api["healthcheck"]["test"])
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["OPENIMAGINE_STORE__URL"].startswith("postgresql+psycopg://")
        assert env["OPENIMAGINE_BLOBS__URL"] == "s3://openimagine-media/"
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_api_replicas_probe_ready_and_health_and_run_no_workers() -> None:
    deployment = _k8s("Deployment", "openimagine-api")
    container = _container("Deployment", "openimagine-api")
    assert deployment["spec"]["replicas"] >= 2
    args = container["args"]
    assert args[0] == "serve"
    assert args[args.index("--workers") + 1] == "0"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    service = _k8s("Service", "openimagine-api")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_worker_runs_one_process_per_gpu() -> None:
    container = _container("Deployment", "openimagine-worker")
    resources = container["resources"]
    gpus = resources["limits"]["nvidia.com/gpu"]
    assert resources["requests"]["nvidia.com/gpu"] == gpus
    args = container["args"]
    assert args[0] == "worker"
    assert int(args[args.index("--count") + 1]) == gpus == 1
    assert _env(container)["OPENIMAGINE_WORKERS__DEVICE"]["value"] == "cuda"


SECRET_SETTINGS = {
    "OPENIMAGINE_STORE__URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "OPENIMAGINE_DELIVERY__SIGNING_SECRET",
    "OPENIMAGINE_DELIVERY__WEBHOOK_SECRET",
    "OPENIMAGINE_API_KEYS",
}


def test_credentials_come_only_from_secrets() -> None:
    for map_data in check.config_maps().values():
        assert not SECRET_SETTINGS & set(map_data)
    for path, container in check.containers():
        for name, var in _env(container).items():
            if name in SECRET_SETTINGS:
                assert "secretKeyRef" in var.get("valueFrom", {}), f"{path.name}: {name}"


def test_every_process_shares_the_store_and_the_bucket() -> None:
    refs = {p.name: _env(c)["OPENIMAGINE_STORE__URL"]["valueFrom"] for p, c in check.containers()}
    assert set(refs) == {"api.yaml", "worker.yaml", "migrate-job.yaml"}
    assert len({str(r) for r in refs.values()}) == 1
    for name in ("api", "worker"):
        env = _env(_container("Deployment", f"openimagine-{name}"))
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(env)
    assert check.config_maps()["openimagine-config"]["OPENIMAGINE_BLOBS__URL"].startswith("s3://")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_valid_resources(tmp_path: Path) -> None:
    # A copy with the optional component added, as components/prometheus says to.
    k8s = shutil.copytree(check.K8S, tmp_path / "k8s")
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    kustomization["components"] = ["components/prometheus"]
    (k8s / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    done = subprocess.run(
        ["kubectl", "kustomize", str(k8s)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    expected = ["Namespace", "ConfigMap", "Job", "Deployment", "Deployment", "Service"]
    assert kinds == sorted([*expected, "PodDisruptionBudget", "PodMonitor"])
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "openimagine"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "openimagine"
        if doc["kind"] != "PodMonitor":
            assert check.k8s_errors(doc, check.K8S_VERSIONS[-1]) == []
    images = {
        c["image"]
        for d in docs
        for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    }
    assert images == {
        "registry.example.com/openimagine-api:0.1.0",
        "registry.example.com/openimagine-worker:0.1.0",
    }
