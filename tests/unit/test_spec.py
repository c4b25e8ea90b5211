"""Parsing of RunnerImage.spec into the typed model (controller.api.spec.parse)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from controller import errors
from controller.api import spec as model

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
PRINCIPAL = "55555555-6666-7777-8888-999999999999"


def full_spec() -> dict[str, Any]:
    return {
        "source": {
            "git": {
                "url": "https://github.com/org/runner.git",
                "ref": "v1.2.3",
                "path": "images/runner",
                "secretRef": {"name": "source-creds"},
            },
            "inline": {
                "dockerfile": "FROM alpine\n",
                "scripts": {"deploy.sh": "echo deploy", "delete.sh": "echo delete"},
            },
        },
        "dockerfile": "build/Dockerfile",
        "buildArgs": {"VERSION": "1.0", "DEBUG": "0"},
        "platforms": ["linux/amd64", "linux/arm64"],
        "target": "final",
        "image": {
            "registry": "contoso.azurecr.io",
            "repository": "ade/runner",
            "tag": "{timestamp}-{shortRevision}",
            "pushSecretRef": {"name": "push-creds"},
        },
        "registryAccess": {
            "acr": {
                "subscriptionId": SUBSCRIPTION,
                "resourceGroup": "rg-ade",
                "name": "contoso",
                "credentialsSecretRef": {"name": "azure-creds"},
            },
            "mode": "PrivatePull",
            "principalIds": [PRINCIPAL],
        },
        "catalog": {
            "git": {
                "url": "https://github.com/org/catalog.git",
                "branch": "develop",
                "secretRef": {"name": "catalog-creds"},
            },
            "manifests": ["Environments/**/environment.yaml", "extra.yaml"],
            "field": "runnerImage",
            "pin": "Digest",
            "commit": {
                "authorName": "Bot",
                "authorEmail": "bot@example.com",
                "messageTemplate": "Pin {image}",
            },
            "pushBranch": "runner-updates",
            "signing": {"secretRef": {"name": "catalog-signing"}},
        },
        "triggers": {
            "baseImage": {"interval": "6h", "enabled": False},
            "source": {"interval": "10m", "enabled": True},
        },
        "build": {
            "backend": "BuildKitDaemon",
            "timeout": "45m",
            "resources": {"requests": {"cpu": 1, "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
            "nodeSelector": {"kubernetes.io/arch": "amd64", "pool": "builds"},
            "tolerations": [
                {
                    "key": "dedicated",
                    "operator": "Equal",
                    "value": "builds",
                    "effect": "NoSchedule",
                },
                {"operator": "Exists"},
                {
                    "key": "spot",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 60,
                },
            ],
            "serviceAccountName": "runner-builds",
        },
        "historyLimit": {"succeeded": 10, "failed": 0},
        "suspend": True,
    }


def minimal_spec() -> dict[str, Any]:
    return {
        "source": {"git": {"url": "https://github.com/org/runner.git"}},
        "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
    }


def test_parse_full_spec_reads_every_field() -> None:
    parsed = model.parse(full_spec())
    assert parsed == model.RunnerImageSpec(
        source=model.Source(
            git=model.GitSource(
                url="https://github.com/org/runner.git",
                ref="v1.2.3",
                path="images/runner",
                secret_ref=model.SecretRef("source-creds"),
            ),
            inline=model.InlineSource(
                dockerfile="FROM alpine\n",
                scripts={"deploy.sh": "echo deploy", "delete.sh": "echo delete"},
            ),
        ),
        image=model.ImageSpec(
            registry="contoso.azurecr.io",
            repository="ade/runner",
            tag="{timestamp}-{shortRevision}",
            push_secret_ref=model.SecretRef("push-creds"),
        ),
        dockerfile="build/Dockerfile",
        build_args={"VERSION": "1.0", "DEBUG": "0"},
        platforms=("linux/amd64", "linux/arm64"),
        target="final",
        registry_access=model.RegistryAccess(
            acr=model.AcrRef(
                subscription_id=SUBSCRIPTION,
                resource_group="rg-ade",
                name="contoso",
                credentials_secret_ref=model.SecretRef("azure-creds"),
            ),
            mode=model.RegistryAccessMode.PRIVATE_PULL,
            principal_ids=(PRINCIPAL,),
        ),
        catalog=model.Catalog(
            git=model.CatalogGit(
                url="https://github.com/org/catalog.git",
                branch="develop",
                secret_ref=model.SecretRef("catalog-creds"),
            ),
            manifests=("Environments/**/environment.yaml", "extra.yaml"),
            field="runnerImage",
            pin=model.PinMode.DIGEST,
            commit=model.CommitSpec(
                author_name="Bot", author_email="bot@example.com", message_template="Pin {image}"
            ),
            push_branch="runner-updates",
            signing=model.CatalogSigning(secret_ref=model.SecretRef("catalog-signing")),
        ),
        triggers=model.Triggers(
            base_image=model.Trigger(interval="6h", enabled=False),
            source=model.Trigger(interval="10m", enabled=True),
        ),
        build=model.BuildSpec(
            backend=model.BuildBackend.BUILDKIT_DAEMON,
            timeout="45m",
            resources=model.ResourceRequirements(
                requests={"cpu": "1", "memory": "2Gi"}, limits={"memory": "4Gi"}
            ),
            node_selector={"kubernetes.io/arch": "amd64", "pool": "builds"},
            tolerations=(
                model.Toleration(
                    key="dedicated",
                    operator=model.TolerationOperator.EQUAL,
                    value="builds",
                    effect=model.TaintEffect.NO_SCHEDULE,
                ),
                model.Toleration(operator=model.TolerationOperator.EXISTS),
                model.Toleration(
                    key="spot",
                    operator=model.TolerationOperator.EXISTS,
                    effect=model.TaintEffect.NO_EXECUTE,
                    toleration_seconds=60,
                ),
            ),
            service_account_name="runner-builds",
        ),
        history_limit=model.HistoryLimit(succeeded=10, failed=0),
        suspend=True,
    )
    assert isinstance(parsed.platforms, tuple)
    assert isinstance(parsed.catalog, model.Catalog)
    assert isinstance(parsed.catalog.manifests, tuple)


def test_parse_minimal_spec_uses_defaults() -> None:
    parsed = model.parse(minimal_spec())
    assert parsed.source == model.Source(
        git=model.GitSource(url="https://github.com/org/runner.git", ref="main", path=".")
    )
    assert parsed.source.inline is None
    assert parsed.image == model.ImageSpec(
        registry="contoso.azurecr.io",
        repository="ade/runner",
        tag="{shortRevision}-{shortBuildKey}",
        push_secret_ref=None,
    )
    assert parsed.dockerfile == "Dockerfile"
    assert parsed.build_args == {}
    assert parsed.platforms == ("linux/amd64",)
    assert parsed.target is None
    assert parsed.registry_access is None
    assert parsed.catalog is None
    assert parsed.triggers == model.Triggers(
        base_image=model.Trigger(interval=None, enabled=True),
        source=model.Trigger(interval=None, enabled=True),
    )
    assert parsed.build == model.BuildSpec(
        backend=model.BuildBackend.JOB,
        timeout="30m",
        resources=model.ResourceRequirements(requests={}, limits={}),
        node_selector={},
        tolerations=(),
        service_account_name=None,
    )
    assert parsed.history_limit == model.HistoryLimit(succeeded=5, failed=5)
    assert parsed.suspend is False


def test_nulls_mean_defaults() -> None:
    raw = minimal_spec()
    raw.update({"dockerfile": None, "suspend": None, "catalog": None, "triggers": None})
    raw["image"]["tag"] = None
    assert model.parse(raw) == model.parse(minimal_spec())


def test_nested_defaults() -> None:
    raw = minimal_spec()
    raw["registryAccess"] = {
        "acr": {"subscriptionId": SUBSCRIPTION, "resourceGroup": "rg", "name": "contoso"}
    }
    raw["catalog"] = {"git": {"url": "https://example.com/c.git"}, "manifests": ["a.yaml"]}
    raw["triggers"] = {"source": {}}
    raw["build"] = {}
    raw["historyLimit"] = {"failed": 1}
    parsed = model.parse(raw)
    assert parsed.registry_access == model.RegistryAccess(
        acr=model.AcrRef(SUBSCRIPTION, "rg", "contoso", None),
        mode=model.RegistryAccessMode.ANONYMOUS_PULL,
        principal_ids=(),
    )
    assert parsed.catalog == model.Catalog(
        git=model.CatalogGit(url="https://example.com/c.git", branch="main", secret_ref=None),
        manifests=("a.yaml",),
        field="runner",
        pin=model.PinMode.TAG,
        commit=model.CommitSpec(
            author_name="ade-runner-operator",
            author_email="ade-runner-operator@users.noreply.local",
            message_template="Use runner image {image} ({reason})",
        ),
        push_branch="",
    )
    assert parsed.triggers == model.Triggers()
    assert parsed.build == model.BuildSpec()
    assert parsed.history_limit == model.HistoryLimit(succeeded=5, failed=1)


def test_catalog_commit_partial_defaults() -> None:
    raw = minimal_spec()
    raw["catalog"] = {
        "git": {"url": "https://example.com/c.git"},
        "manifests": ["a.yaml"],
        "commit": {"authorName": "Bot"},
    }
    catalog = model.parse(raw).catalog
    assert catalog is not None
    assert catalog.commit == model.CommitSpec(
        author_name="Bot",
        author_email=model.DEFAULT_AUTHOR_EMAIL,
        message_template=model.DEFAULT_COMMIT_MESSAGE,
    )


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at a dotted path below spec, e.g. `image.registry`."""
    keys = path.split(".")
    target = raw
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value


def _delete(raw: dict[str, Any], path: str) -> None:
    keys = path.split(".")
    target = raw
    for key in keys[:-1]:
        target = target[key]
    del target[keys[-1]]


@pytest.mark.parametrize(
    ("path", "value", "field", "problem"),
    [
        ("image.registry", 42, "spec.image.registry", "must be of type str"),
        ("catalog.signing", {}, "spec.catalog.signing.secretRef", "is required"),
        (
            "catalog.signing",
            {"secretRef": {}},
            "spec.catalog.signing.secretRef.name",
            "is required",
        ),
        ("image.registry", True, "spec.image.registry", "must be of type str"),
        ("image.tag", ["x"], "spec.image.tag", "must be of type str"),
        ("image.pushSecretRef", "push-creds", "spec.image.pushSecretRef", "must be an object"),
        ("image.pushSecretRef.name", 1, "spec.image.pushSecretRef.name", "must be of type str"),
        ("historyLimit.succeeded", True, "spec.historyLimit.succeeded", "must be an integer"),
        ("historyLimit.failed", False, "spec.historyLimit.failed", "must be an integer"),
        ("historyLimit.failed", 1.5, "spec.historyLimit.failed", "must be of type int"),
        ("historyLimit.succeeded", "5", "spec.historyLimit.succeeded", "must be of type int"),
        ("suspend", "true", "spec.suspend", "must be of type bool"),
        ("suspend", 1, "spec.suspend", "must be of type bool"),
        ("triggers.source.enabled", "no", "spec.triggers.source.enabled", "must be of type bool"),
        ("triggers.baseImage.interval", 60, "spec.triggers.baseImage.interval", "str"),
        ("triggers.baseImage", [], "spec.triggers.baseImage", "must be an object"),
        ("platforms", "linux/amd64", "spec.platforms", "must be of type list"),
        ("platforms", ["linux/amd64", 7], "spec.platforms[1]", "must be a string"),
        ("buildArgs", ["A=1"], "spec.buildArgs", "must be of type Mapping"),
        ("buildArgs.DEBUG", 0, "spec.buildArgs.DEBUG", "must be a string"),
        ("source.git.url", None, "spec.source.git.url", "is required"),
        ("source.git.ref", 3, "spec.source.git.ref", "must be of type str"),
        ("source.git.secretRef", {}, "spec.source.git.secretRef.name", "is required"),
        ("source.inline", "FROM x", "spec.source.inline", "must be an object"),
        ("registryAccess.acr.name", None, "spec.registryAccess.acr.name", "is required"),
        ("registryAccess.acr", None, "spec.registryAccess.acr", "is required"),
        ("registryAccess.principalIds", [1], "spec.registryAccess.principalIds[0]", "string"),
        ("catalog.git", None, "spec.catalog.git", "is required"),
        ("catalog.git.branch", 1, "spec.catalog.git.branch", "must be of type str"),
        ("catalog.manifests", ["a", None], "spec.catalog.manifests[1]", "must be a string"),
        ("catalog.commit.authorEmail", 5, "spec.catalog.commit.authorEmail", "str"),
        ("catalog.commit", "x", "spec.catalog.commit", "must be an object"),
        ("build.timeout", 30, "spec.build.timeout", "must be of type str"),
        ("build.resources", "big", "spec.build.resources", "must be an object"),
        ("build.resources.limits", ["4Gi"], "spec.build.resources.limits", "type Mapping"),
        ("build.resources.limits.memory", 4.5, "spec.build.resources.limits[memory]", "quantity"),
        ("build.resources.requests.cpu", True, "spec.build.resources.requests[cpu]", "quantity"),
        ("build.backend", 1, "spec.build.backend", "must be of type str"),
        ("build.nodeSelector", ["a=b"], "spec.build.nodeSelector", "must be of type Mapping"),
        ("build.nodeSelector.pool", 1, "spec.build.nodeSelector[pool]", "must be a string"),
        ("build.tolerations", {"key": "x"}, "spec.build.tolerations", "must be of type list"),
        ("build.tolerations", [{}, "x"], "spec.build.tolerations[1]", "must be an object"),
        ("build.serviceAccountName", 1, "spec.build.serviceAccountName", "must be of type str"),
    ],
)
def test_wrong_type_names_full_field_path(path: str, value: Any, field: str, problem: str) -> None:
    raw = full_spec()
    _set(raw, path, value)
    with pytest.raises(errors.SpecError) as caught:
        model.parse(raw)
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert caught.value.message.startswith(f"{field}: ")
    assert caught.value.reason == "InvalidSpec"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("source", "spec.source"),
        ("image", "spec.image"),
        ("image.registry", "spec.image.registry"),
        ("image.repository", "spec.image.repository"),
        ("source.git.url", "spec.source.git.url"),
    ],
)
def test_missing_required_field(path: str, field: str) -> None:
    raw = minimal_spec()
    _delete(raw, path)
    with pytest.raises(errors.SpecError, match=f"^{re.escape(field)}: is required$"):
        model.parse(raw)


def test_script_content_must_be_a_string() -> None:
    raw = full_spec()
    raw["source"]["inline"]["scripts"]["deploy.sh"] = 1
    with pytest.raises(errors.SpecError) as caught:
        model.parse(raw)
    assert caught.value.field == "spec.source.inline.scripts.deploy.sh"
    assert caught.value.problem == "must be a string"


def test_inline_source_requires_dockerfile() -> None:
    raw = minimal_spec()
    raw["source"] = {"inline": {"scripts": {}}}
    with pytest.raises(errors.SpecError) as caught:
        model.parse(raw)
    assert caught.value.field == "spec.source.inline.dockerfile"


@pytest.mark.parametrize("raw", [None, [], "spec", 1])
def test_spec_must_be_an_object(raw: Any) -> None:
    with pytest.raises(errors.SpecError) as caught:
        model.parse(raw)
    assert caught.value.field == "spec"
    assert caught.value.problem == "must be an object"


@pytest.mark.parametrize(
    ("path", "value", "field", "allowed"),
    [
        ("registryAccess.mode", "Public", "spec.registryAccess.mode", "AnonymousPull, PrivatePull"),
        ("catalog.pin", "tag", "spec.catalog.pin", "Tag, Digest"),
        ("build.backend", "Podman", "spec.build.backend", "Job, BuildKitDaemon, Docker"),
    ],
)
def test_enum_error_lists_allowed_values(path: str, value: str, field: str, allowed: str) -> None:
    raw = full_spec()
    _set(raw, path, value)
    with pytest.raises(errors.SpecError) as caught:
        model.parse(raw)
    assert caught.value.field == field
    assert caught.value.problem == f"must be one of {allowed} (got {value!r})"


@pytest.mark.parametrize(
    ("path", "value", "attribute", "expected"),
    [
        ("registryAccess.mode", "AnonymousPull", "mode", model.RegistryAccessMode.ANONYMOUS_PULL),
        ("build.backend", "Docker", "backend", model.BuildBackend.DOCKER),
        ("build.backend", "Job", "backend", model.BuildBackend.JOB),
        ("catalog.pin", "Tag", "pin", model.PinMode.TAG),
    ],
)
def test_enum_values_parsed(path: str, value: str, attribute: str, expected: object) -> None:
    raw = full_spec()
    _set(raw, path, value)
    parsed = model.parse(raw)
    owner: object = {
        "mode": parsed.registry_access,
        "backend": parsed.build,
        "pin": parsed.catalog,
    }[attribute]
    assert getattr(owner, attribute) is expected


def test_parse_does_not_alias_input() -> None:
    raw = full_spec()
    before = copy.deepcopy(raw)
    parsed = model.parse(raw)
    assert raw == before
    raw["buildArgs"]["VERSION"] = "changed"
    raw["platforms"].append("linux/s390x")
    assert parsed.build_args["VERSION"] == "1.0"
    assert parsed.platforms == ("linux/amd64", "linux/arm64")


def test_model_is_frozen() -> None:
    parsed = model.parse(minimal_spec())
    with pytest.raises(AttributeError):
        parsed.suspend = True  # type: ignore[misc]


# --- spec.build: resources and placement (the Job backend's build pod) --------------------------


def test_toleration_defaults_are_the_kubernetes_ones() -> None:
    raw = minimal_spec()
    raw["build"] = {"tolerations": [{"key": "dedicated"}]}
    (toleration,) = model.parse(raw).build.tolerations
    assert toleration == model.Toleration(
        key="dedicated",
        operator=model.TolerationOperator.EQUAL,
        value="",
        effect=None,
        toleration_seconds=None,
    )


@pytest.mark.parametrize(
    ("entry", "field", "problem"),
    [
        ({"key": "a", "operator": "In"}, "operator", "must be one of Exists, Equal (got 'In')"),
        (
            {"key": "a", "effect": "NoRun"},
            "effect",
            "must be one of NoSchedule, PreferNoSchedule, NoExecute (got 'NoRun')",
        ),
        ({"key": "a", "tolerationSeconds": "60"}, "tolerationSeconds", "must be of type int"),
        ({"key": "a", "tolerationSeconds": True}, "tolerationSeconds", "must be an integer"),
        ({"key": 1}, "key", "must be of type str"),
        ({"key": "a", "value": 1}, "value", "must be of type str"),
    ],
)
def test_toleration_errors_name_the_item_and_field(
    entry: dict[str, Any], field: str, problem: str
) -> None:
    raw = minimal_spec()
    raw["build"] = {"tolerations": [{"operator": "Exists"}, entry]}
    with pytest.raises(errors.SpecError) as caught:
        model.parse(raw)
    assert caught.value.field == f"spec.build.tolerations[1].{field}"
    assert caught.value.problem == problem


def test_integer_quantities_become_text() -> None:
    raw = minimal_spec()
    raw["build"] = {"resources": {"requests": {"cpu": 2, "memory": "1Gi"}, "limits": {"cpu": 4}}}
    assert model.parse(raw).build.resources == model.ResourceRequirements(
        requests={"cpu": "2", "memory": "1Gi"}, limits={"cpu": "4"}
    )


def test_resources_with_only_limits() -> None:
    raw = minimal_spec()
    raw["build"] = {"resources": {"limits": {"memory": "4Gi"}}}
    assert model.parse(raw).build.resources == model.ResourceRequirements(
        requests={}, limits={"memory": "4Gi"}
    )


def test_placement_does_not_alias_input() -> None:
    raw = full_spec()
    parsed = model.parse(raw)
    raw["build"]["nodeSelector"]["pool"] = "changed"
    raw["build"]["resources"]["limits"]["memory"] = "1Gi"
    raw["build"]["tolerations"].append({"operator": "Exists"})
    assert parsed.build.node_selector["pool"] == "builds"
    assert parsed.build.resources.limits["memory"] == "4Gi"
    assert len(parsed.build.tolerations) == 3


def test_attestations_default_to_min_provenance_and_no_sbom() -> None:
    raw = minimal_spec()
    raw["build"] = {"attestations": {}}
    assert model.parse(raw).build.attestations == model.Attestations(
        provenance=model.ProvenanceMode.MIN, sbom=False, sbom_generator=None
    )
    raw["build"] = {
        "attestations": {"provenance": "Max", "sbom": True, "sbomGenerator": "r.local/scan:1"}
    }
    assert model.parse(raw).build.attestations == model.Attestations(
        provenance=model.ProvenanceMode.MAX, sbom=True, sbom_generator="r.local/scan:1"
    )
