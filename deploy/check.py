"""Validate deploy/ offline, with nothing but the dev dependencies.

- The compose files, interpolated with `.env.example` as `docker compose` would, against the
  Compose specification's JSON schema (the copy `check-jsonschema` vendors).
- The Kubernetes manifests against the API schemas of the oldest supported and the newest
  Kubernetes release (`kubernetes-validate`, strict: unknown fields are errors), and
  kustomization.yaml against the files beside it.
- Cross-file facts: every OPENIMAGINE_* name is a setting of `openimagine.config.Settings`, each
  process's environment validates as `Settings`, each Secret a manifest reads is in
  secrets.example.yaml, and the probes' routes and the migration's command exist.

`make deploy-check` runs it (as `.ci/run` does); tests/unit/test_deploy.py runs the same checks.
Where `docker compose` or `kubectl` is installed, `docker compose config` and `kubectl kustomize`
run too; no check needs them, a cluster, a Docker engine or the network.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from pydantic import BaseModel, ValidationError
from referencing import Registry, Resource

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
K8S = DEPLOY / "k8s"
COMPOSE_FILES = (DEPLOY / "compose.yaml", DEPLOY / "compose.gpu.yaml")
ENV_EXAMPLE = DEPLOY / ".env.example"
SECRETS_EXAMPLE = K8S / "secrets.example.yaml"
PROMETHEUS = K8S / "components" / "prometheus"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
PREFIX = "OPENIMAGINE_"
# The oldest Kubernetes release the manifests are meant for, and the newest the schemas know.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
_K8S_SCHEMAS = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")

Doc = dict[str, Any]


# -- loading ---------------------------------------------------------------------------------


def yaml_docs(path: Path) -> list[Doc]:
    """The non-empty documents of a YAML file (parsed once while it is unchanged: treat them
    as read-only)."""
    return _parse(path, path.stat().st_mtime_ns)


@functools.cache
def _parse(path: Path, _mtime_ns: int) -> list[Doc]:
    # perf: every check walks the same files; libyaml's loader where PyYAML has it.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(path.read_text(), Loader=loader) if d]


def k8s_files() -> list[Path]:
    """The manifests: every YAML file in deploy/k8s but kustomization.yaml."""
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_docs(paths: list[Path] | None = None) -> list[tuple[Path, Doc]]:
    """(file, resource) for each resource in the manifests."""
    return [(p, d) for p in paths or k8s_files() for d in yaml_docs(p)]


def env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines, as `docker compose` reads an env file (quotes stripped)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


_VAR = re.compile(r"\$(?:\$|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable syntax: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:?error}`
    (and the forms without the colon). A required variable that is unset raises KeyError."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        value = env.get(name)
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op and op.endswith("?") and unset:
            raise KeyError(f"{name}: {arg}")
        if op and op.endswith("-") and unset:
            return arg
        return value or ""

    return _VAR.sub(one, text)


def compose_doc(path: Path, env: dict[str, str] | None = None) -> Doc:
    """A compose file with its variables filled in from `env` (default: .env.example)."""
    (doc,) = yaml_docs(path)
    filled: Doc = _interpolate_tree(doc, env_file() if env is None else env)
    return filled


def _interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, env) for v in node]
    return node


# -- schemas ---------------------------------------------------------------------------------


def compose_schema() -> Doc:
    """The Compose specification's schema, as vendored by check-jsonschema."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: Doc = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def check_compose_schema(paths: tuple[Path, ...] = COMPOSE_FILES) -> list[str]:
    """Each compose file, interpolated, against the Compose specification."""
    schema = compose_schema()
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors: list[str] = []
    for path in paths:
        try:
            doc = compose_doc(path)
        except KeyError as e:
            errors.append(f"{path.name}: variable not in .env.example: {e}")
            continue
        for err in validator.iter_errors(doc):
            where = "/".join(str(p) for p in err.absolute_path)
            errors.append(f"{path.name}: {where}: {err.message}")
    return errors


def check_k8s_schema(versions: tuple[str, ...] = K8S_VERSIONS) -> list[str]:
    """Every resource against the Kubernetes schemas; an unknown kind is an error too."""
    errors: list[str] = []
    for path, doc in k8s_docs():
        name = f"{path.name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        for version in versions:
            errors += [f"{name} (Kubernetes {version}): {e}" for e in k8s_errors(doc, version)]
    return errors


def k8s_errors(doc: Doc, version: str) -> list[str]:
    """What is wrong with one resource for one Kubernetes release (strict: unknown fields
    are errors), from the schemas kubernetes-validate bundles."""
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", str(doc.get("apiVersion")))
    validator = _k8s_validator(version, f"{str(doc.get('kind')).lower()}-{group}.json")
    if validator is None:
        return [f"no schema for kind {doc.get('kind')} in {doc.get('apiVersion')}"]
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


@functools.cache
def _k8s_validator(version: str, name: str) -> jsonschema.protocols.Validator | None:
    # perf: kubernetes_validate.validate parses the 1.4 MB definitions for every resource;
    # here they are parsed once per release (same files, same validator class).
    folder = _K8S_SCHEMAS.joinpath(f"v{version}-local-strict")
    if not folder.joinpath(name).is_file():
        return None
    schema = json.loads(folder.joinpath(name).read_text())
    registry: Registry = Resource.from_contents(schema) @ _k8s_definitions(version)
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _k8s_definitions(version: str) -> Registry:
    text = _K8S_SCHEMAS.joinpath(f"v{version}-local-strict", "_definitions.json").read_text()
    return Resource.from_contents(json.loads(text)) @ Registry()


def check_kustomization() -> list[str]:
    """kustomization.yaml names every manifest (but the examples) and only existing files,
    and an image for every container image the manifests use."""
    kust = yaml_docs(K8S / "kustomization.yaml")[0]
    listed = set(kust.get("resources", []))
    present = {p.name for p in k8s_files() if not p.name.endswith(".example.yaml")}
    errors = [f"kustomization.yaml: {n} does not exist" for n in sorted(listed - present)]
    errors += [f"kustomization.yaml: {n} is not listed" for n in sorted(present - listed)]
    images = {i["name"] for i in kust.get("images", [])}
    for path, container in containers():
        if container["image"] not in images:
            errors.append(f"{path.name}: image {container['image']} has no kustomization entry")
    return errors


# -- cross-file facts ------------------------------------------------------------------------


def containers() -> Iterator[tuple[Path, Doc]]:
    """Every container (and init container) of the manifests' workloads."""
    for path, doc in k8s_docs():
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            yield path, c


def settings_env_names() -> set[str]:
    """Every environment variable `Settings` reads (OPENIMAGINE_X and OPENIMAGINE_GROUP__X)."""
    from openimagine.config import Settings

    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        names.add(f"{PREFIX}{name}".upper())
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            names |= {f"{PREFIX}{name}__{sub}".upper() for sub in group.model_fields}
    return names


def secret_values() -> dict[tuple[str, str], str]:
    """(Secret, key) → value, from secrets.example.yaml."""
    found: dict[tuple[str, str], str] = {}
    for doc in yaml_docs(SECRETS_EXAMPLE):
        for key, value in doc.get("stringData", {}).items():
            found[doc["metadata"]["name"], key] = value
    return found


def config_maps() -> dict[str, dict[str, str]]:
    """ConfigMap name → data, from the manifests."""
    docs = (d for _, d in k8s_docs())
    return {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}


def k8s_environments() -> Iterator[tuple[str, dict[str, str]]]:
    """(container, its environment) with the example Secrets' values; a missing reference
    raises KeyError."""
    secrets, maps = secret_values(), config_maps()
    for path, c in containers():
        env: dict[str, str] = {}
        for source in c.get("envFrom", []):
            env.update(maps[source["configMapRef"]["name"]])
        for var in c.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            ref = var["valueFrom"]["secretKeyRef"]
            if (ref["name"], ref["key"]) in secrets:
                env[var["name"]] = secrets[ref["name"], ref["key"]]
            elif not ref.get("optional"):
                raise KeyError(f"{path.name}: {c['name']}: Secret {ref['name']}/{ref['key']}")
        yield f"{path.name}: {c['name']}", env


def compose_environments() -> Iterator[tuple[str, dict[str, str]]]:
    """(service, its environment) for every compose service, interpolated."""
    for path in COMPOSE_FILES:
        for name, service in compose_doc(path).get("services", {}).items():
            env = service.get("environment", {})
            if isinstance(env, list):
                env = dict(item.partition("=")[::2] for item in env)
            yield f"{path.name}: {name}", {k: str(v) for k, v in env.items()}


def check_environments() -> list[str]:
    """Names are settings, and each process's environment validates as `Settings`."""
    try:
        envs = list(k8s_environments()) + list(compose_environments())
    except KeyError as e:
        return [f"missing: {e}"]
    known = settings_env_names()
    errors = [
        f"{where}: {name} is not a setting of openimagine.config.Settings"
        for where, env in envs
        for name in env
        if name.startswith(PREFIX) and name not in known
    ]
    for where, env in envs:
        errors += [f"{where}: {e}" for e in _settings_errors(env)]
    return errors


def _settings_errors(env: dict[str, str]) -> list[str]:
    from openimagine.config import Settings

    ours = {k: v for k, v in env.items() if k.startswith(PREFIX)}
    with _environ(ours):
        try:
            Settings()
        except ValidationError as e:
            return [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
    return []


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Exactly these OPENIMAGINE_* variables (and no others) while the block runs."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(PREFIX)}
    for key in saved:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        for key in values:
            os.environ.pop(key, None)
        os.environ.update(saved)


MIGRATE = ["migrate"]  # the arguments of the images' entrypoint, `openimagine`


def check_code_facts() -> list[str]:
    """The routes the probes call and the command the migration runs exist in the source,
    and the Job and the compose file run that command with the images' entrypoint."""
    src = ROOT / "src" / "openimagine"
    health = (src / "api" / "health.py").read_text()
    errors = [
        f"api/health.py has no route {route} (the probes and healthchecks call it)"
        for route in ("/health", "/ready")
        if f'@router.get("{route}"' not in health
    ]
    if MIGRATE[0] not in _cli_commands():
        errors.append(f"the CLI has no `openimagine {MIGRATE[0]}` command (the migration runs it)")
    if not re.search(r'^ENTRYPOINT \["openimagine"\]', DOCKERFILE.read_text(), re.M):
        errors.append('Dockerfile: the images\' ENTRYPOINT is not ["openimagine"]')
    job = next(c for p, c in containers() if p.name == "migrate-job.yaml")
    if "command" in job or job.get("args") != MIGRATE:
        errors.append(f"migrate-job.yaml: the container does not run args {MIGRATE}")
    service = compose_doc(COMPOSE_FILES[0])["services"]["migrate"]
    if "entrypoint" in service or service.get("command") != MIGRATE:
        errors.append(f"compose.yaml: migrate does not run command {MIGRATE}")
    return errors


def _cli_commands() -> set[str]:
    import typer

    from openimagine.cli import app

    group = typer.main.get_command(app)
    return set(getattr(group, "commands", {}))


def check_dockerfile() -> list[str]:
    """The extras the images install exist in pyproject.toml (pip only warns about others)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    known = set(pyproject["project"].get("optional-dependencies", {}))
    installs = re.findall(r"openimagine[^\s\"\[]*\[([\w,-]+)\]", DOCKERFILE.read_text())
    if len(installs) != 2:
        return [f"Dockerfile: expected two installs of openimagine[extras], found {installs}"]
    return [
        f"Dockerfile: extra {e!r} is not in pyproject.toml"
        for extras in installs
        for e in extras.split(",")
        if e not in known
    ]


def check_prometheus_component() -> list[str]:
    """components/prometheus: its files exist, its PodMonitor selects the pods and scrapes
    ports they name, and the /metrics route exists. (No schema: PodMonitor is a CRD.)"""
    comp = yaml_docs(PROMETHEUS / "kustomization.yaml")[0]
    errors = [
        f"components/prometheus: {n} does not exist"
        for n in comp.get("resources", [])
        if not (PROMETHEUS / n).is_file()
    ]
    monitor = yaml_docs(PROMETHEUS / "podmonitor.yaml")[0]
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    ports: set[str] = set()
    for _, doc in k8s_docs():
        template = doc.get("spec", {}).get("template", {})
        if wanted <= template.get("metadata", {}).get("labels", {}).items():
            for c in template["spec"]["containers"]:
                ports |= {p["name"] for p in c.get("ports", []) if "name" in p}
    errors += [
        f"podmonitor.yaml: no selected pod has a port named {e['port']}"
        for e in monitor["spec"]["podMetricsEndpoints"]
        if e["port"] not in ports
    ]
    sources = (ROOT / "src" / "openimagine").rglob("*.py")
    if not any('"/metrics"' in p.read_text() for p in sources):
        errors.append("no /metrics route in src/openimagine (the PodMonitor scrapes it)")
    return errors


# -- optional tools --------------------------------------------------------------------------


def optional_tool_checks() -> list[str]:
    """`docker compose config` and `kubectl kustomize`, where installed; else skipped."""
    errors: list[str] = []
    if _works(["docker", "compose", "version"]):
        files = [arg for p in COMPOSE_FILES for arg in ("-f", str(p))]
        cmd = ["docker", "compose", *files, "--env-file", str(ENV_EXAMPLE), "config", "-q"]
        errors += _run(cmd, "docker compose config")
    else:
        _say("skipped: docker compose config (no docker compose here)")
    if _works(["kubectl", "version", "--client"]):
        errors += _run(["kubectl", "kustomize", str(K8S)], "kubectl kustomize")
    else:
        _say("skipped: kubectl kustomize (no kubectl here)")
    return errors


def _works(cmd: list[str]) -> bool:
    if shutil.which(cmd[0]) is None:
        return False
    done = subprocess.run(  # noqa: S603 - fixed commands, no input in them
        cmd, capture_output=True, timeout=30, check=False
    )
    return done.returncode == 0


def _run(cmd: list[str], what: str) -> list[str]:
    done = subprocess.run(  # noqa: S603 - fixed commands, no input in them
        cmd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        return [f"{what}: {done.stderr.strip() or done.stdout.strip()}"]
    _say(f"ok: {what}")
    return []


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


CHECKS: dict[str, Callable[[], list[str]]] = {
    "compose files against the Compose specification": check_compose_schema,
    f"Kubernetes manifests against the API schemas ({', '.join(K8S_VERSIONS)})": check_k8s_schema,
    "kustomization.yaml against the manifests": check_kustomization,
    "environment names and values against Settings": check_environments,
    "probe routes and the migration command in the source": check_code_facts,
    "the images' extras against pyproject.toml": check_dockerfile,
    "components/prometheus against the manifests": check_prometheus_component,
}


def main() -> int:
    """Run every check; print what passed and each error; 1 if any failed."""
    errors: list[str] = []
    for what, check in CHECKS.items():
        found = check()
        _say(f"{'FAIL' if found else 'ok'}: {what}")
        errors += found
    errors += optional_tool_checks()
    for error in errors:
        _say(f"  {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
