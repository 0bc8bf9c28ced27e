"""compose.yaml is valid by the Compose Specification's schema, and runs what the docs say: two
processors and the example service on one healthy Redis, with commands their CLIs accept, from an
image (Dockerfile) that installs those commands and the APP they name."""

from __future__ import annotations

import ast
import copy
import fnmatch
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from jsonschema import Draft7Validator

from luasched.cli import main as luasched_main

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVICES: dict[str, Any] = COMPOSE["services"]
#: The services that run luasched's image (built from the repository), not a stock one.
LUASCHED = sorted(name for name, service in SERVICES.items() if "build" in service)


def schema_errors(document: Any) -> list[str]:
    validator = Draft7Validator(SCHEMA)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document))


def command(service: str) -> list[str]:
    cmd = SERVICES[service]["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(word) for word in cmd]


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: str(value) for key, value in env.items()}


def published_ports(service: str) -> dict[int, int]:
    """published port -> container port, from the short ("8000:8000") or the long syntax."""
    ports = {}
    for port in SERVICES[service].get("ports", []):
        if isinstance(port, dict):
            ports[int(port["published"])] = int(port["target"])
        else:
            *_, published, target = str(port).split("/")[0].split(":")
            ports[int(published)] = int(target)
    return ports


def parse_luasched(argv: list[str]) -> click.Context:
    """The ``luasched`` command line parsed by the real CLI, without running it."""
    assert argv[0] == "luasched"
    parent = click.Context(luasched_main, info_name="luasched")
    subcommand = luasched_main.get_command(parent, argv[1])
    assert subcommand is not None, f"luasched has no command {argv[1]!r}"
    return subcommand.make_context(argv[1], argv[2:], parent=parent)


def parse_uvicorn(argv: list[str]) -> click.Context:
    uvicorn = pytest.importorskip("uvicorn")
    assert argv[0] == "uvicorn"
    ctx: click.Context = uvicorn.main.make_context("uvicorn", argv[1:])
    return ctx


def top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        targets = [node.target] if isinstance(node, ast.AnnAssign) else targets
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def assert_app_exists(spec: str) -> None:
    """``module:attribute``, as luasched and uvicorn import it from the image's working directory."""
    module, _, attribute = spec.partition(":")
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    assert path.is_file(), f"{spec}: no {path.relative_to(ROOT)}"
    assert attribute in top_level_names(path), f"{spec}: {path.relative_to(ROOT)} defines no {attribute!r}"


def duration_s(text: str) -> float:
    """A Compose duration such as "40s" or "1m30s"."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    assert parts and text, f"not a duration: {text!r}"
    hours, minutes, seconds = (float(p or 0) for p in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


# --- the schema ------------------------------------------------------------------------------


def test_the_vendored_schema_is_a_valid_json_schema() -> None:
    # It names its draft as "https://json-schema.org/draft-07/schema", a spelling that jsonschema
    # does not look up (it would fall back to the latest draft, with a warning): so the draft is
    # named here, and a schema moved to another draft fails this test rather than validating wrongly.
    assert re.fullmatch(r"https?://json-schema\.org/draft-07/schema#?", SCHEMA["$schema"])
    Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["title"] == "Compose Specification"


def test_compose_yaml_is_valid_by_the_compose_schema() -> None:
    assert schema_errors(COMPOSE) == []


@pytest.mark.parametrize(("where", "key", "value"), [
    (("services", "processor"), "comand", ["luasched"]),  # an unknown key
    (("services", "processor", "depends_on", "redis"), "condition", "healthy"),  # not in the enum
    (("services", "redis", "healthcheck"), "interval", 2),  # a duration is a string
    (("services", "service"), "ports", "8000:8000"),  # a list, not a string
])
def test_the_schema_check_rejects_a_broken_file(where: tuple[str, ...], key: str, value: Any) -> None:
    broken = copy.deepcopy(COMPOSE)
    node = broken
    for step in where:
        node = node[step]
    node[key] = value
    assert schema_errors(broken) != []


# --- what runs -------------------------------------------------------------------------------


def test_redis_has_a_health_check_that_pings_it() -> None:
    redis = SERVICES["redis"]
    assert str(redis["image"]).startswith("redis:7")
    test = redis["healthcheck"]["test"]
    if isinstance(test, str):
        words = shlex.split(test)
    elif test[0] == "CMD-SHELL":
        words = shlex.split(test[1])
    else:
        assert test[0] == "CMD", test
        words = test[1:]
    assert words == ["redis-cli", "ping"]


def test_the_luasched_services_are_the_processors_and_the_web_service() -> None:
    assert LUASCHED == ["processor", "service"]
    assert "scheduler" not in SERVICES  # processors do the scheduler's duties


def test_two_processor_replicas_run_the_example_app() -> None:
    processor = SERVICES["processor"]
    assert processor["deploy"]["replicas"] == 2
    assert "container_name" not in processor  # a fixed name would make a second replica (or --scale) fail
    ctx = parse_luasched(command("processor"))
    assert ctx.info_name == "processor"
    assert ctx.params["app"] == "examples.service:sched"
    assert ctx.params["capacity"] == 8
    assert_app_exists(ctx.params["app"])


def test_processors_get_their_grace_period_before_sigkill() -> None:
    grace = parse_luasched(command("processor")).params["grace"]
    assert duration_s(SERVICES["processor"]["stop_grace_period"]) > grace


def test_the_web_service_runs_the_example_app_on_the_published_port() -> None:
    ctx = parse_uvicorn(command("service"))
    assert ctx.params["app"] == "examples.service:app"
    assert ctx.params["host"] == "0.0.0.0"
    assert_app_exists(ctx.params["app"])
    assert published_ports("service") == {8000: ctx.params["port"]}
    assert ctx.params["port"] == 8000


@pytest.mark.parametrize("service", ["processor", "service"])
def test_each_luasched_service_uses_the_redis_service(service: str) -> None:
    url = urlsplit(environment(service)["LUASCHED_REDIS_URL"])
    assert url.scheme == "redis"
    assert url.hostname in SERVICES and str(SERVICES[url.hostname]["image"]).startswith("redis:")
    assert (url.port or 6379) == 6379
    assert SERVICES[service]["depends_on"][url.hostname]["condition"] == "service_healthy"


def test_the_luasched_services_share_one_namespace() -> None:
    namespaces = {environment(service).get("LUASCHED_NAMESPACE") for service in LUASCHED}
    assert len(namespaces) == 1 and None not in namespaces, namespaces


# --- the image -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(word.upper(), rest.strip()) for word, _, rest in
            (line.strip().partition(" ") for line in joined.splitlines() if line.strip())]


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


@pytest.mark.parametrize("service", ["processor", "service"])
def test_the_services_build_the_repositorys_dockerfile(service: str) -> None:
    build = SERVICES[service]["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (ROOT / context / dockerfile).resolve() == ROOT / "Dockerfile"


def test_the_image_installs_the_commands_the_services_run() -> None:
    installs = [args for op, args in dockerfile_instructions() if op == "RUN" and "pip install" in args]
    assert len(installs) == 1, installs
    extras_found = re.findall(r"\[([\w,\s-]+)\]", installs[0])
    assert extras_found, f"the image installs no extra: {installs[0]}"
    extras = [e.strip() for e in extras_found[0].split(",")]
    project = PYPROJECT["project"]
    installed = requirement_names(project["dependencies"])
    for extra in extras:
        installed |= requirement_names(project["optional-dependencies"][extra])
    assert {"uvicorn", "starlette"} <= installed, installed
    for service in LUASCHED:
        program = command(service)[0]
        assert program in project["scripts"] or program in installed, f"{service}: nothing installs {program!r}"


def test_the_image_holds_the_app_in_its_working_directory_and_runs_as_a_user() -> None:
    instructions = dockerfile_instructions()
    workdir = None
    copied_to: dict[str, str] = {}
    for op, args in instructions:
        if op == "WORKDIR":
            workdir = args
        elif op == "COPY" and "--from" not in args:
            *sources, target = args.split()
            for source in sources:
                copied_to[source.rstrip("/")] = str(Path(workdir or "/") / target)
    assert copied_to.get("examples") == str(Path(workdir or "/") / "examples")  # examples.service imports from cwd
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0"), users


def test_the_docker_context_keeps_what_the_dockerfile_copies() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied = [source.rstrip("/") for op, args in dockerfile_instructions() if op == "COPY" and "--from" not in args
              for source in args.split()[:-1]]
    assert {"examples", "luasched", "lua", "pyproject.toml"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), source
        ignored = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(source, p.lstrip("/"))]
        assert not ignored, f".dockerignore leaves {source} out of the build context: {ignored}"
    assert ".venv" in patterns and ".git" in patterns
