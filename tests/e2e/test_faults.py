"""Dependencies that misbehave: a fault proxy (`tests.env.faultproxy`) in front of each external
service the operator talks to, through the real operator, end to end.

The services, each behind its own proxy on loopback: the registry (distribution, token auth),
its token server (the registry's realm points at the token proxy), git over HTTP (the source
and the catalog), and Azure Resource Manager with Entra ID (HTTPS: the proxy terminates TLS with
a certificate from the emulator's CA and re-originates it). Only the operator is pointed at the
proxies; the test's own pushes go to the registry directly, and the rules match the operator's
requests only.

Two outcomes, as documented:
- a passing fault (the first N matching requests of each service) is retried within its budget
  and the RunnerImage ends Ready, with no retry earlier than a `Retry-After` the proxy gave
  (violations: 0);
- a lasting fault ends `Ready=False` (or Stalled) with a reason and a message naming the
  failing service, and the reconcile does not hang: a token sent a byte a second is a registry
  time-out (`ADE_REGISTRY_TIMEOUT`), a git server that never answers is cut by the reconcile's
  deadline (`ADE_RECONCILE_TIMEOUT`), which names it.
A git server's 429 (whose Retry-After git does not pass on) and a manifest whose bytes are not
its digest have tests of their own.

Every test also checks that every reconcile of the run finished within `DEADLINE` (the
operator's `reconcile_duration_seconds` histogram): a reconcile that does not end is a failure.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import (
    ARM_CLIENT_ID,
    ARM_CLIENT_SECRET,
    ARM_TENANT_ID,
    GIT_PASSWORD,
    GIT_USER,
    PUSH_PASSWORD,
    PUSH_USER,
    StartOperator,
)
from tests.e2e import azure, buildjobs, catalogs
from tests.env import arm as arm_
from tests.env import gitserver, kube, kwok, oci, registry, tokenserver
from tests.env import operator as operator_
from tests.env.faultproxy import (
    CorruptManifest,
    Delay,
    Drip,
    Fault,
    FaultProxy,
    Reset,
    Rule,
    Status,
    Truncate,
)

pytestmark = pytest.mark.e2e

SUB = "4c0ffee0-0000-4000-8000-0000000000f1"
GROUP = "rg-faults"
ACR = "contosofaults"
MANIFEST_PATH = "Environments/webapp/environment.yaml"
OPERATOR = "ade-runner-operator"
"""The registry client's User-Agent: the registry and token rules match the operator only."""
DEADLINE = 30.0
"""Every reconcile of a test must have finished within this (a bucket of the histogram)."""
REGISTRY_TIMEOUT = "2s"
"""The operator's registry timeout in these tests, so that a slow answer costs seconds."""


# -- the services and their proxies ------------------------------------------------------------


@dataclasses.dataclass
class Registry:
    """The registry and its token server, each behind a proxy (shared by the module's tests)."""

    registry: registry.Registry
    proxy: FaultProxy
    tokens: tokenserver.TokenServer
    token_proxy: FaultProxy


@pytest.fixture(scope="module")
def proxied_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if not registry.available():
        pytest.skip("docker-registry is not installed")
    folder = tmp_path_factory.mktemp("faults-registry")
    tokens = tokenserver.TokenServer(
        folder / "tokens", users={PUSH_USER: tokenserver.User(password=PUSH_PASSWORD)}
    )
    with tokens, FaultProxy(f"127.0.0.1:{tokens.port}", name="token-proxy") as token_proxy:
        realm = f"{token_proxy.url}/oauth2/token"
        served = registry.Registry(folder / "registry", tokens, realm=realm)
        with served, FaultProxy(served.host, name="registry-proxy") as proxy:
            yield Registry(served, proxy, tokens, token_proxy)


@dataclasses.dataclass
class Scene:
    """One test's world: every service behind its proxy, the Secrets, the RunnerImage's body."""

    namespace: str
    registry: Registry
    git: gitserver.GitServer
    git_proxy: FaultProxy
    arm: arm_.ArmEmulator
    arm_proxy: FaultProxy
    pusher: oci.Pusher
    body: dict[str, Any]

    @property
    def proxies(self) -> dict[str, FaultProxy]:
        return {
            "registry": self.registry.proxy,
            "token": self.registry.token_proxy,
            "git": self.git_proxy,
            "arm": self.arm_proxy,
        }

    def env(self, **extra: str) -> dict[str, str]:
        """The operator's settings: Azure through its proxy, a short registry timeout."""
        return {
            "ADE_AZURE_RESOURCE_MANAGER": self.arm_proxy.url,
            "ADE_AZURE_AUTHORITY_HOST": self.arm_proxy.url,
            "ADE_AZURE_CA_BUNDLE": str(self.arm.ca_file),
            "ADE_AZURE_CREDENTIAL_SCOPE": arm_.ARM_SCOPE,
            "ADE_REGISTRY_TIMEOUT": REGISTRY_TIMEOUT,
            **extra,
        }


def _tls_server(pair: Any) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pair.cert, pair.key)
    return context


@pytest.fixture
def scene(
    cluster: kube.Cluster,
    namespace: str,
    kwok_node: kwok.Kwok,
    proxied_registry: Registry,
    tmp_path: pathlib.Path,
) -> Iterator[Scene]:
    del kwok_node  # runs the build pods
    served = proxied_registry
    for proxy in (served.proxy, served.token_proxy):
        proxy.reset()
    served.tokens.set_anonymous_pull(False)
    with oci.Pusher(served.registry.host, username=PUSH_USER, password=PUSH_PASSWORD) as pusher:
        base = oci.Image(
            layers=[[oci.file("usr/local/bin/entrypoint.sh", '#!/bin/sh\nexec "$@"\n', 0o755)]],
            entrypoint=buildjobs.BASE_ENTRYPOINT,
        )
        pusher.push_image(f"{namespace}/core", base, tag="4.0")
        emulator = arm_.ArmEmulator(
            tmp_path / "arm",
            tenant_id=ARM_TENANT_ID,
            principals={ARM_CLIENT_ID: arm_.Principal(secret=ARM_CLIENT_SECRET)},
            on_anonymous_pull=lambda _name, enabled: served.tokens.set_anonymous_pull(enabled),
            lro_retry_after=0.1,
        )
        pair = emulator.pki.issue("arm-proxy", "127.0.0.1", hosts=("127.0.0.1",))
        trust = ssl.create_default_context(cafile=str(emulator.ca_file))
        with (
            emulator,
            FaultProxy(
                f"127.0.0.1:{emulator.port}",
                name="arm-proxy",
                tls=_tls_server(pair),
                upstream_tls=trust,
            ) as arm_proxy,
            gitserver.running(tmp_path / "git", {GIT_USER: GIT_PASSWORD}) as git,
        ):
            git.create_repo(
                "runners",
                {
                    "Dockerfile": f"FROM {served.proxy.host}/{namespace}/core:4.0\n"
                    "COPY scripts/ /scripts/\n",
                    "scripts/deploy.sh": "#!/bin/sh\necho deploy\n",
                    "scripts/delete.sh": "#!/bin/sh\n",
                },
                executable={"scripts/deploy.sh", "scripts/delete.sh"},
            )
            git.create_repo("catalog", {MANIFEST_PATH: catalogs.MANIFEST.format(name="webapp")})
            with FaultProxy(f"127.0.0.1:{git.port}", name="git-proxy") as git_proxy:
                emulator.add_registry(
                    SUB, GROUP, ACR, login_server=served.proxy.host, anonymous_pull=False
                )
                buildjobs.push_secret(cluster, namespace, served.proxy.host)
                catalogs.git_secret(cluster, namespace)
                azure.azure_secret(cluster, namespace)
                body = buildjobs.runner_image(namespace, served.proxy.host, "unused")
                body["spec"]["source"] = {
                    "git": {
                        "url": f"{git_proxy.url}/runners.git",
                        "ref": "main",
                        "secretRef": {"name": "catalog"},
                    }
                }
                body["spec"]["registryAccess"] = {
                    "mode": "AnonymousPull",
                    "acr": {
                        "subscriptionId": SUB,
                        "resourceGroup": GROUP,
                        "name": ACR,
                        "credentialsSecretRef": {"name": "azure"},
                    },
                }
                catalogs.with_catalog(body, f"{git_proxy.url}/catalog.git", [MANIFEST_PATH])
                yield Scene(namespace, served, git, git_proxy, emulator, arm_proxy, pusher, body)


# -- what a test checks ------------------------------------------------------------------------


def finish_build(cluster: kube.Cluster, scene: Scene) -> str:
    """Do what the build pod does (push the image, straight to the registry), then report."""
    (job,) = kube.wait_for(
        lambda: buildjobs.jobs(cluster, scene.namespace) or None, timeout=90, what="the build Job"
    )
    return buildjobs.finish(cluster, scene.namespace, job, scene.pusher)


def all_violations(scene: Scene) -> list[str]:
    """Every retry, on any service, that came before the `Retry-After` it was given."""
    found = [f"{name}: {v}" for name, p in scene.proxies.items() for v in p.violations()]
    found += [f"arm (emulator): {v}" for v in scene.arm.retry_after_violations]
    return found


_BUCKET = re.compile(
    r'^ade_runner_reconcile_duration_seconds_bucket\{le="(?P<le>[^"]+)"\} (?P<n>\S+)$', re.M
)
_COUNT = re.compile(r"^ade_runner_reconcile_duration_seconds_count (?P<n>\S+)$", re.M)


def assert_no_reconcile_past_deadline(operator: operator_.OperatorProcess) -> None:
    """Every reconcile the operator ran finished within `DEADLINE` (none hung)."""
    text = operator.metrics()
    buckets = {float(m["le"]): float(m["n"]) for m in _BUCKET.finditer(text)}
    total = _COUNT.search(text)
    assert total is not None, "no reconcile ran"
    assert buckets[DEADLINE] == float(total["n"]), (
        f"{float(total['n']) - buckets[DEADLINE]:g} reconcile(s) took longer than {DEADLINE:g}s"
    )


def wait_ready_false(
    cluster: kube.Cluster, namespace: str, *, timeout: float, reason: str | None = None
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = cluster.get(namespace, buildjobs.NAME)
        ready = kube.condition(obj or {}, "Ready")
        if ready is None or ready.get("status") != "False":
            return None
        if reason is not None and ready.get("reason") != reason:
            return None
        return obj

    return kube.wait_for(probe, timeout=timeout, what=f"Ready=False ({reason or 'any reason'})")


# -- passing faults: retried within budget, Ready, no pacing violation -------------------------


@dataclasses.dataclass(frozen=True)
class Injection:
    """Faults for the first requests each service gets from the operator, one request each, in
    this order. git: (repository, fault) for that repository's next `info/refs`; each costs a
    reconcile (git is not retried in the request), so git gets fewer."""

    registry: tuple[Fault, ...] = ()
    token: tuple[Fault, ...] = ()
    git: tuple[tuple[str, Fault], ...] = ()
    arm: tuple[Fault, ...] = ()


RESET, SLOW, CUT = Reset(), Delay(4.0), Truncate()
E500, E502, E503, E429 = Status(500), Status(502), Status(503), Status(429, retry_after=2)
PASSING = {
    "reset": Injection((RESET,) * 2, (RESET,) * 2, (("runners", RESET),), (RESET,) * 2),
    "5xx": Injection(
        (E500, E502, E503),
        (E500, E502, E503),
        (("runners", E500), ("catalog", E503)),
        (E500, E502, E503),
    ),
    # git's own 429 has a test of its own (below): the operator cannot see its Retry-After.
    "429-retry-after": Injection((E429,) * 2, (E429,) * 2, (), (E429,) * 2),
    # Later than ADE_REGISTRY_TIMEOUT; git's and ARM's time-outs are far longer (see git-slow).
    "slow": Injection((SLOW,), (SLOW,)),
    "truncate": Injection((CUT,), (CUT,), (("runners", CUT),), (CUT,)),
}


def rules_for(scene: Scene, injection: Injection) -> list[tuple[str, Rule]]:
    """A rule per fault at each service's proxy, for the requests the operator makes there."""
    operator = {"User-Agent": OPERATOR}
    wanted = [
        ("registry", Rule(f, path="/manifests/", headers=operator)) for f in injection.registry
    ]
    wanted += [("token", Rule(f, path="/oauth2/token", headers=operator)) for f in injection.token]
    wanted += [("git", Rule(f, path=f"/{repo}.git/info/refs")) for repo, f in injection.git]
    wanted += [
        ("arm", Rule(f, method="GET", path=f"Microsoft.ContainerRegistry/registries/{ACR}\\?"))
        for f in injection.arm
    ]
    return [(name, scene.proxies[name].add(rule)) for name, rule in wanted]


@pytest.mark.parametrize("kind", list(PASSING))
def test_a_passing_fault_at_every_service_ends_ready(
    kind: str, cluster: kube.Cluster, scene: Scene, start_operator: StartOperator
) -> None:
    injection = PASSING[kind]
    rules = rules_for(scene, injection)
    operator = start_operator(**scene.env())
    cluster.apply(scene.namespace, json.dumps(scene.body))
    finish_build(cluster, scene)
    ready = cluster.wait_condition(
        scene.namespace, buildjobs.NAME, "Ready", status="True", timeout=120
    )
    assert ready["status"]["catalog"]["revision"] == scene.git.head("catalog")
    unserved = [f"{name}: {rule.fault}" for name, rule in rules if rule.hits != 1]
    assert unserved == [], "faults that never reached the operator's requests"
    assert all_violations(scene) == []
    assert_no_reconcile_past_deadline(operator)


# -- lasting faults: not Ready, the reason names the service, no hang --------------------------


@dataclasses.dataclass(frozen=True)
class Lasting:
    service: str
    rule: Callable[[], Rule]
    reason: str
    named: Callable[[Scene], str]
    """What the message must contain: the failing service's address or name."""
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    """More settings for the operator."""


LASTING = {
    "registry-503": Lasting(
        "registry",
        lambda: Rule(Status(503), path="/manifests/", headers={"User-Agent": OPERATOR}, times=None),
        "RegistryUnavailable",
        lambda s: s.registry.proxy.host,
    ),
    "token-sent-a-byte-a-second": Lasting(
        "token",
        lambda: Rule(Drip(1.0), path="/oauth2/token", headers={"User-Agent": OPERATOR}, times=None),
        "RegistryUnavailable",
        lambda s: s.registry.proxy.host,
    ),
    "token-503": Lasting(
        "token",
        lambda: Rule(
            Status(503), path="/oauth2/token", headers={"User-Agent": OPERATOR}, times=None
        ),
        "RegistryUnavailable",
        lambda s: "token",
    ),
    "git-502": Lasting(
        "git",
        lambda: Rule(Status(502), path="/info/refs", times=None),
        "SourceUnavailable",
        lambda s: s.git_proxy.url,
    ),
    "git-slow": Lasting(
        "git",
        lambda: Rule(Delay(60.0), path="/info/refs", times=None),
        "ReconcileTimeout",
        lambda s: f"the git server {s.git_proxy.url}/runners.git",
        env={"ADE_RECONCILE_TIMEOUT": "5s"},
    ),
    "arm-503": Lasting(
        "arm",
        lambda: Rule(Status(503), path="Microsoft.ContainerRegistry", times=None),
        "AzureUnavailable",
        lambda s: "Azure Resource Manager",
    ),
}


@pytest.mark.parametrize("case", list(LASTING))
def test_a_lasting_fault_is_reported_naming_the_service(
    case: str, cluster: kube.Cluster, scene: Scene, start_operator: StartOperator
) -> None:
    lasting = LASTING[case]
    rule = scene.proxies[lasting.service].add(lasting.rule())
    operator = start_operator(**scene.env(**lasting.env))
    cluster.apply(scene.namespace, json.dumps(scene.body))
    found = wait_ready_false(cluster, scene.namespace, timeout=60, reason=lasting.reason)
    ready = kube.condition(found, "Ready")
    assert ready is not None
    assert lasting.named(scene) in ready["message"], ready["message"]
    assert rule.hits > 0
    assert all_violations(scene) == []
    assert_no_reconcile_past_deadline(operator)


def test_a_manifest_whose_digest_does_not_match_is_not_trusted(
    cluster: kube.Cluster, scene: Scene, start_operator: StartOperator
) -> None:
    """A registry answering manifest bytes that are not the digest it names: the image is not
    verified and nothing is written to the catalog; once the registry is right, Ready."""
    before = scene.git.head("catalog")
    rule = scene.registry.proxy.add(
        Rule(
            CorruptManifest(),
            method="GET",
            path="/manifests/sha256:",
            headers={"User-Agent": OPERATOR},
            times=None,
        )
    )
    operator = start_operator(**scene.env())
    cluster.apply(scene.namespace, json.dumps(scene.body))
    finish_build(cluster, scene)
    found = wait_ready_false(cluster, scene.namespace, timeout=60, reason="RegistryError")
    ready = kube.condition(found, "Ready")
    assert ready is not None
    assert scene.registry.proxy.host in ready["message"]
    assert "digest" in ready["message"]
    assert rule.hits > 0
    assert scene.git.head("catalog") == before
    scene.registry.proxy.clear()
    cluster.wait_condition(scene.namespace, buildjobs.NAME, "Ready", status="True", timeout=60)
    assert_no_reconcile_past_deadline(operator)


def test_a_git_server_that_throttles_is_not_asked_again_before_retry_after(
    cluster: kube.Cluster, scene: Scene, start_operator: StartOperator
) -> None:
    """git does not pass a 429's `Retry-After` on to its caller: the operator waits long enough
    for what servers ask (GitHub: a minute), never its usual 5 s backoff."""
    told = 8.0
    rule = scene.git_proxy.add(Rule(Status(429, retry_after=told), path="/info/refs"))
    operator = start_operator(**scene.env())
    cluster.apply(scene.namespace, json.dumps(scene.body))
    found = wait_ready_false(cluster, scene.namespace, timeout=60, reason="SourceThrottled")
    ready = kube.condition(found, "Ready")
    assert ready is not None
    assert scene.git_proxy.url in ready["message"]
    assert "429" in ready["message"]
    assert rule.hits == 1
    (throttled,) = scene.git_proxy.injected()
    kube.wait_for(
        lambda: time.monotonic() > throttled.answered + told + 1 or None,
        timeout=told + 5,
        what="the Retry-After to pass",
    )
    assert all_violations(scene) == []
    assert_no_reconcile_past_deadline(operator)
