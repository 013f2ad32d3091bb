"""Security basics (issue 11 §4): no secrets in the repository, every service on 127.0.0.1, model
files loaded as weights only, a login on the production UI, and no argument or drop file name that
writes outside ``REELREC_HOME``.

Each check has a negative control (a planted secret, a component bound to 0.0.0.0, a pickled payload
that does run when loaded unsafely), so a check that silently stopped looking would fail.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import pickle
import re
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelrec import services
from reelrec.errors import DataError
from reelrec.services import Component
from reelrec.settings import Settings

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


def _profile(monkeypatch: pytest.MonkeyPatch, home: Path, profile: str) -> Settings:
    monkeypatch.setenv("REELREC_PROFILE", profile)
    return Settings.from_env(home)


# ---------------------------------------------------------------- 1. no secrets in the repository
# Credentials in URLs that are documented local defaults, not secrets (RabbitMQ's guest account).
ALLOWED_URL_CREDENTIALS = {("guest", "guest")}
PLACEHOLDER = re.compile(r"^(\$\{.*\}|<.*>|\.\.\.|\*+|x+|changeme|password|secret|\{.*\})$", re.IGNORECASE)
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"aws_secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}", re.I),
    "GitHub token": re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{40,}"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "password assigned a literal": re.compile(
        r"\b[\w-]*(?:password|passwd|secret|api_key|apikey|token)['\"]?\s*[:=]\s*['\"]([^'\"\s$<{]{6,})['\"]",
        re.I,
    ),
}
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://([^\s:/@'\"]+):([^\s@/'\"]+)@", re.I)
# Files that hold secrets by their nature; REELREC_HOME (where the generated ones live) is git-ignored.
SECRET_FILE = re.compile(
    r"(^|/)(\.env|\.netrc|id_[rd]sa\w*|jwt_secret|api_secret_key|[^/]*passwords[^/]*\.json[^/]*)$"
    r"|\.(pem|key|p12|pfx|keystore|jks)$"
)


def find_secrets(text: str) -> list[str]:
    """What in ``text`` looks like a credential: ``["<kind>: <excerpt>"]`` (empty: nothing found)."""
    found = [f"{kind}: {m.group(0)[:60]}" for kind, rx in SECRET_PATTERNS.items() for m in rx.finditer(text)]
    for m in URL_CREDENTIALS.finditer(text):
        user, password = m.group(1), m.group(2)
        if (user, password) not in ALLOWED_URL_CREDENTIALS and not PLACEHOLDER.match(password):
            found.append(f"password in URL: {m.group(0)[:60]}")
    return found


def repository_files() -> list[Path]:
    """Files git tracks, plus new ones it does not ignore (what the next commit could carry)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"not a git checkout ({err})")
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_the_secret_scanner_finds_planted_secrets() -> None:
    # Built at run time, so this file holds none of them.
    planted = {
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIE",
        "AWS access key id": "AKIA" + "Q" * 16,
        "AWS secret access key": "aws_secret_access_key = " + "a" * 40,
        "GitHub token": "ghp_" + "b" * 36,
        "password assigned a literal": 'password = "' + "hunter2hunter" + '"',
        "password in URL": "postgresql://reelrec:" + "s3cr3t" + "@db:5432/x",
    }
    for kind, text in planted.items():
        assert any(hit.startswith(kind) for hit in find_secrets(text)), (kind, text)
    # The documented local defaults are not secrets.
    assert find_secrets("postgresql+psycopg://postgres@127.0.0.1:5432/postgres") == []
    assert find_secrets("amqp://guest:guest@127.0.0.1:5672//") == []
    assert find_secrets("redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0") == []


def test_no_secrets_in_repository_files() -> None:
    files = repository_files()
    assert any(p.name == "pyproject.toml" for p in files) and len(files) > 50
    hits: list[str] = []
    for path in files:
        if not path.is_file():
            continue  # deleted in the working tree
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        hits += [f"{path.relative_to(REPO)}: {hit}" for hit in find_secrets(data.decode("utf-8", "replace"))]
    assert hits == []


def test_no_secret_files_in_repository_and_the_home_is_ignored() -> None:
    names = [str(p.relative_to(REPO)) for p in repository_files()]
    assert [n for n in names if SECRET_FILE.search(n)] == []
    assert SECRET_FILE.search("docker/.env") and SECRET_FILE.search(
        ".reelrec/airflow/simple_auth_manager_passwords.json.generated"
    )
    generated = [
        ".reelrec/airflow/jwt_secret",
        ".reelrec/airflow/simple_auth_manager_passwords.json.generated",
    ]
    ignored = subprocess.run(["git", "check-ignore", *generated], cwd=REPO, capture_output=True, text=True)
    assert ignored.stdout.split() == generated


# ---------------------------------------------------------------- 2 and 5. everything on 127.0.0.1
IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
# Flags that choose a listening address, per command (the value follows the flag).
HOST_FLAGS = ("--host", "-h", "--bind", "--ip")
LOG_SERVERS = ("scheduler", "triggerer", "worker")  # airflow commands that serve logs unless told not to


def bind_violations(component: Component) -> list[str]:
    """Why ``component`` could listen beyond 127.0.0.1 (empty: it cannot, as far as its command line
    and environment say)."""
    problems: list[str] = []
    argv = list(component.argv)
    ours = {key: value for key, value in component.env.items() if os.environ.get(key) != value}
    for i, arg in enumerate(argv[:-1]):
        if arg in HOST_FLAGS and argv[i + 1] != LOOPBACK:
            problems.append(f"{arg} {argv[i + 1]}")
    for text in [*argv, *ours.values()]:
        problems += [f"address {ip} in {text[:80]!r}" for ip in IPV4.findall(text) if ip != LOOPBACK]
        if "localhost" in text or "0.0.0.0" in text:
            problems.append(f"non-loopback host in {text[:80]!r}")
    if "airflow" in Path(argv[0]).name:
        if ours.get("AIRFLOW__API__HOST") != LOOPBACK:
            problems.append(f"AIRFLOW__API__HOST={ours.get('AIRFLOW__API__HOST')}")
        if ours.get("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST") != LOOPBACK:
            problems.append("the scheduler's health-check server would bind 0.0.0.0")
        if argv[1] == "api-server" and argv[argv.index("--host") + 1 :][:1] != [LOOPBACK]:
            problems.append("api-server without --host 127.0.0.1")
        command = argv[2] if argv[1] == "celery" else argv[1]
        if command in LOG_SERVERS and "--skip-serve-logs" not in argv:
            problems.append(f"airflow {command} serves logs on 0.0.0.0 (no --skip-serve-logs)")
    if "SPARK_HOME" in component.env:
        if component.env.get("SPARK_LOCAL_IP") != LOOPBACK:
            problems.append("SPARK_LOCAL_IP is not 127.0.0.1 (Spark's web UIs would bind 0.0.0.0)")
        conf = dict(a.split("=", 1) for a in argv if "=" in a and a.startswith("spark."))
        if "spark-submit" in argv[0]:
            for key in ("spark.connect.grpc.binding.address", "spark.driver.bindAddress"):
                if conf.get(key) != LOOPBACK:
                    problems.append(f"{key}={conf.get(key)}")
            if conf.get("spark.ui.enabled") != "false":
                problems.append("the Connect server's driver UI is on (it binds every interface)")
        elif "--host" not in argv:
            problems.append("a Spark daemon without --host 127.0.0.1")
    return problems


@pytest.mark.parametrize("profile", ["embedded", "production"])
def test_every_component_of_each_profile_binds_loopback_only(
    profile: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack = services.components(_profile(monkeypatch, tmp_path, profile))
    names = {c.name for c in stack}
    expected = {"spark-connect", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor"}
    if profile == "production":
        expected |= {"spark-master", "spark-worker", "celery-worker"}
    assert expected <= names
    assert {c.name: bind_violations(c) for c in stack} == {c.name: [] for c in stack}
    assert all(c.ports for c in stack if c.name in ("airflow-api-server", "spark-connect", "spark-master"))


def test_the_bind_check_catches_a_component_on_every_interface(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack = {c.name: c for c in services.components(_profile(monkeypatch, tmp_path, "production"))}
    api = stack["airflow-api-server"]
    argv = tuple("0.0.0.0" if a == LOOPBACK else a for a in api.argv)
    assert "--host 0.0.0.0" in bind_violations(Component(api.name, argv, env=api.env))
    scheduler = stack["airflow-scheduler"]
    argv = tuple(a for a in scheduler.argv if a != "--skip-serve-logs")
    assert bind_violations(Component(scheduler.name, argv, env=scheduler.env))
    master = stack["spark-master"]
    env = {**master.env, "SPARK_LOCAL_IP": "0.0.0.0"}
    assert bind_violations(Component(master.name, master.argv, env=env))


def test_the_feature_server_binds_loopback_by_default() -> None:
    """``feast serve`` (what the README and ``reelrec demo`` print) listens on 127.0.0.1 unless told
    otherwise; the README's command says so explicitly."""
    from feast.cli.serve import serve_command

    host = next(p for p in serve_command.params if p.name == "host")
    assert host.default == LOOPBACK
    readme = (REPO / "README.md").read_text()
    commands = [line for line in readme.splitlines() if re.search(r"feast -c .* serve\b", line)]
    assert commands and all("--host 127.0.0.1" in line for line in commands), commands


# ---------------------------------------------------------------- 3. weights only
SHIPPED = ("reelrec", "models", "feature_repo", "spark_jobs", "dags", "synthetic_world")


def _calls(name: str) -> Iterator[tuple[Path, str, ast.Call]]:
    """Every call ``<x>.<name>(...)`` in the shipped packages: file, ``x`` (when a plain name), call."""
    for package in SHIPPED:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                if node.func.attr == name:
                    receiver = node.func.value
                    yield path, receiver.id if isinstance(receiver, ast.Name) else "", node


def test_every_torch_load_is_weights_only_and_nothing_unpickles() -> None:
    loads = [(path, call) for path, receiver, call in _calls("load") if receiver == "torch"]
    assert len(loads) >= 1  # models/weights.py: what the two-tower and ranker artifacts load with
    for path, call in loads:
        flag = {k.arg: k.value for k in call.keywords}.get("weights_only")
        assert isinstance(flag, ast.Constant) and flag.value is True, f"{path}:{call.lineno}"
    unpickling = [
        f"{path.relative_to(REPO)}:{call.lineno}"
        for name in ("load", "loads", "Unpickler")
        for path, receiver, call in _calls(name)
        if receiver in ("pickle", "joblib", "dill", "cloudpickle")
    ]
    allow_pickle = [
        f"{path.relative_to(REPO)}:{call.lineno}"
        for path, _, call in _calls("load")
        if any(k.arg == "allow_pickle" for k in call.keywords)
    ]
    assert unpickling == [] and allow_pickle == []


class _Payload:
    """Unpickling this runs ``os.mkdir(marker)``: proof that a file executed code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def _plant(weights: Path, marker: Path, legacy: bool) -> None:
    import torch

    state = {"weight": torch.zeros(2), "payload": _Payload(marker)}
    if legacy:
        with weights.open("wb") as out:
            pickle.dump(state, out, protocol=2)
    else:
        torch.save(state, weights)


@pytest.mark.torch
@pytest.mark.parametrize("legacy", [False, True], ids=["torch.save", "plain-pickle"])
def test_a_pickled_payload_where_two_tower_weights_live_is_refused_unrun(
    settings: Settings, tmp_path: Path, legacy: bool
) -> None:
    import torch

    from models.two_tower import artifacts
    from tests.models.test_two_tower import SMALL, _space

    date = "2026-11-10"
    space = _space(5)
    path = artifacts.save(date, settings, artifacts.build_model(SMALL, space), space, SMALL)
    artifacts.point_to(date, settings, path)
    weights, marker = path / artifacts.WEIGHTS_FILE, tmp_path / "payload-ran"
    _plant(weights, marker, legacy)
    with pytest.raises(DataError) as err:
        artifacts.load(date, settings)
    assert str(weights) in str(err.value) and "weights_only" in str(err.value)
    assert not marker.exists()
    # The payload is armed: an unsafe load does run it (then fails or not, too late).
    with contextlib.suppress(Exception):
        torch.load(weights, weights_only=False)
    assert marker.is_dir()


@pytest.mark.torch
def test_a_pickled_payload_where_ranker_weights_live_is_refused_unrun(
    settings: Settings, tmp_path: Path
) -> None:
    import torch

    from models.ranker import artifacts
    from models.ranker.config import RankerConfig
    from models.ranker.model import Ranker

    cfg, names = RankerConfig(), ["f0", "f1", "f2"]
    path = artifacts.save("2026-11-06", settings, Ranker(len(names), cfg), cfg, names)
    weights, marker = path / artifacts.WEIGHTS_FILE, tmp_path / "payload-ran"
    _plant(weights, marker, legacy=False)
    with pytest.raises(DataError, match=re.escape(str(weights))):
        artifacts.load_version(path)
    assert not marker.exists()
    # Not a state_dict at all, and not a torch file at all: refused, naming the file.
    torch.save([torch.zeros(1)], weights)
    with pytest.raises(DataError, match=rf"{re.escape(str(weights))}: it holds a list"):
        artifacts.load_version(path)
    weights.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=re.escape(str(weights))):
        artifacts.load_version(path)


# ---------------------------------------------------------------- 4. a login on the production UI
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_production_login_is_generated_once_random_and_private(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from reelrec.airflow_local import ADMIN_USER, airflow_env, ensure_login, passwords_file

    settings = _profile(monkeypatch, tmp_path / "a", "production")
    old_umask = os.umask(0)  # the most permissive umask: the file must still be 0600
    try:
        password = ensure_login(settings)
    finally:
        os.umask(old_umask)
    path = passwords_file(settings)
    assert password and len(password) >= 20 and password != ADMIN_USER
    assert _mode(path) == 0o600 and json.loads(path.read_text()) == {ADMIN_USER: password}
    assert ensure_login(settings) is None  # a second start reuses it, prints nothing
    assert json.loads(path.read_text()) == {ADMIN_USER: password}
    other = ensure_login(_profile(monkeypatch, tmp_path / "b", "production"))
    assert other and other != password  # not a constant
    # A file Airflow wrote itself, with the umask's permissions, is narrowed.
    path.chmod(0o644)
    assert ensure_login(settings) is None and _mode(path) == 0o600
    env = airflow_env(settings)
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{ADMIN_USER}:admin"  # user:role
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(path)
    for secret in ("jwt_secret", "api_secret_key"):
        assert _mode(settings.airflow_home / secret) == 0o600


def test_embedded_profile_keeps_no_login(settings: Settings) -> None:
    from reelrec.airflow_local import airflow_env, ensure_login, passwords_file

    assert ensure_login(settings) is None and not passwords_file(settings).exists()
    assert airflow_env(settings)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "True"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@pytest.mark.airflow
def test_production_api_server_refuses_anonymous_requests_and_listens_on_loopback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The production profile's api-server alone (on SQLite, so no Postgres is needed): the login
    line is printed at the first start only, anonymous and wrong-password requests get 401,
    reelrec's own client signs in, and every socket of its processes listens on 127.0.0.1."""
    import httpx
    import psutil

    from reelrec.airflow_api import AirflowApi
    from reelrec.airflow_local import airflow_components, passwords_file
    from reelrec.services.process import log_file, running_pid

    home = tmp_path / "home"
    monkeypatch.setenv("REELREC_AIRFLOW_DB_URL", f"sqlite:///{home / 'airflow' / 'airflow.db'}")
    monkeypatch.setenv("REELREC_AIRFLOW_EXECUTOR", "LocalExecutor")
    monkeypatch.setenv("REELREC_UI_PORT", str(_free_port()))
    settings = _profile(monkeypatch, home, "production")
    api = [c for c in airflow_components(settings) if c.name == "airflow-api-server"]
    lines: list[str] = []
    try:
        services.up(settings, api, echo=lines.append)
        password = json.loads(passwords_file(settings).read_text())["admin"]
        assert [line for line in lines if "Airflow login" in line] == [
            f"[services] Airflow login: user admin, password {password}  (shown once; "
            f"kept in {passwords_file(settings)}, mode 0600)"
        ]
        base = f"http://{LOOPBACK}:{settings.ui_port}"
        assert httpx.get(f"{base}/api/v2/dags", timeout=30).status_code == 401
        wrong = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": "admin"}, timeout=30)
        assert wrong.status_code == 401
        client = AirflowApi(settings)
        try:
            assert "dags" in client.request("GET", "/dags")
        finally:
            client.close()
        pid = running_pid(settings.services, "airflow-api-server")
        assert pid is not None
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        listening = {
            (c.laddr.ip, c.laddr.port)
            for p in tree
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {(LOOPBACK, settings.ui_port)}
        assert password not in log_file(settings.services, "airflow-api-server").read_text()
    finally:
        services.down(settings, api)
    lines.clear()
    try:
        services.up(settings, api, echo=lines.append)  # the second start reuses the password
        assert not any("Airflow login" in line for line in lines)
        assert json.loads(passwords_file(settings).read_text())["admin"] == password
    finally:
        services.down(settings, api)


# ---------------------------------------------------------------- 6. nothing outside REELREC_HOME
ESCAPES = ["../../outside", "..", "/tmp/outside", "2026-11-01/../../x", "2026-11-01\\..\\x"]


def _entries(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--start", "{}"],
        ["run", "--date", "{}"],
        ["run", "--date", "2026-11-01", "--to", "{}"],
        ["summary", "--date", "{}"],
        ["validate", "--suite", "bronze", "--date", "{}"],
        ["demo", "--start", "{}"],
        ["rollback", "--to", "{}"],
    ],
    ids=lambda a: " ".join(a[:-1]),
)
def test_cli_refuses_path_arguments(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reelrec.cli import main

    home = tmp_path / "home"
    for bad in ESCAPES:
        before = _entries(tmp_path)
        with pytest.raises(SystemExit) as exit_:
            main(["--home", str(home), *(bad if a == "{}" else a for a in argv)])
        assert exit_.value.code == 2
        message = capsys.readouterr().err
        assert f"argument {argv[-2]}" in message and repr(bad) in message, message
        assert _entries(tmp_path) == before  # nothing written, inside the home or out


def test_job_entry_points_refuse_path_dates(capsys: pytest.CaptureFixture[str]) -> None:
    from reelrec.jobs import run_job

    called: list[str] = []

    def job(date: str, settings: Settings) -> dict[str, str]:
        called.append(date)
        return {}

    for bad in ESCAPES:
        with pytest.raises(SystemExit) as exit_:
            run_job(job, "a job", ["--date", bad])
        assert exit_.value.code == 2 and repr(bad) in capsys.readouterr().err
    assert called == []


def test_dag_date_param_and_library_paths_refuse_escapes(settings: Settings) -> None:
    from reelrec.landing import drop_dir
    from reelrec.releases import release_path
    from reelrec.runs import resolve_run_date

    for bad in ESCAPES:
        with pytest.raises(ValueError, match=rf"param 'date'.*{re.escape(repr(bad))}"):
            resolve_run_date({"date": bad}, None)
        with pytest.raises(ValueError, match=rf"landing drop events: .*{re.escape(repr(bad))}"):
            drop_dir("events", bad, settings)
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            release_path(settings, bad)
    with pytest.raises(KeyError, match="unknown landing feed '../events'"):
        drop_dir("../events", "2026-11-01", settings)
    assert drop_dir("events", "2026-11-01", settings) == settings.landing / "events" / "dt=2026-11-01"


@pytest.mark.parametrize(
    "name", ["../escaped.jsonl.gz", "a/b.jsonl.gz", "..", ".hidden.jsonl", "x\\..\\y", ""]
)
def test_a_drop_file_name_with_a_path_is_refused_before_anything_is_written(
    name: str, settings: Settings, tmp_path: Path
) -> None:
    import datetime as dt

    from synthetic_world.landing_writer import replace_drop

    before = _entries(tmp_path)
    with pytest.raises(DataError, match=rf"landing drop events: file name {re.escape(repr(name))}"):
        replace_drop(settings, "events", dt.date(2026, 11, 1), {"part-0.jsonl.gz": b"{}", name: b"{}"})
    assert _entries(tmp_path) == before
    replace_drop(settings, "events", dt.date(2026, 11, 1), {"part-0.jsonl.gz": b"{}"})  # a plain name is fine
    assert (settings.landing / "events" / "dt=2026-11-01" / "part-0.jsonl.gz").read_bytes() == b"{}"
