"""A typed, read-only model of `RunnerImage.spec`, parsed from the raw object.

Pure: no I/O. The API server has already applied the CRD schema (types, patterns, defaults), so
parsing here only shapes the data; rules the schema cannot express live in
`controller.reconcile.validate`. Defaults are repeated here so that a spec read outside the API
server (the command line, unit tests) means the same; `tests/api/test_crd_model.py` fails if they
drift from the CRD.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from controller import errors


class RegistryAccessMode(enum.StrEnum):
    ANONYMOUS_PULL = "AnonymousPull"
    PRIVATE_PULL = "PrivatePull"


class PinMode(enum.StrEnum):
    TAG = "Tag"
    DIGEST = "Digest"


class CatalogFormat(enum.StrEnum):
    ENVIRONMENT_DEFINITION = "EnvironmentDefinition"
    YAML = "YAML"


class HumanEditPolicy(enum.StrEnum):
    """What to do with a catalog value someone else set (neither written nor found by us)."""

    KEEP = "Keep"
    OVERWRITE = "Overwrite"


class BuildBackend(enum.StrEnum):
    JOB = "Job"
    BUILDKIT_DAEMON = "BuildKitDaemon"
    DOCKER = "Docker"


class ProvenanceMode(enum.StrEnum):
    """BuildKit's SLSA provenance attestation: none, `mode=min` or `mode=max`."""

    DISABLED = "Disabled"
    MIN = "Min"
    MAX = "Max"


class TolerationOperator(enum.StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(enum.StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


DEFAULT_TAG_TEMPLATE = "{shortRevision}-{shortBuildKey}"
DEFAULT_COMMIT_MESSAGE = "Use runner image {image} ({reason})"
DEFAULT_AUTHOR_NAME = "ade-runner-operator"
DEFAULT_AUTHOR_EMAIL = "ade-runner-operator@users.noreply.local"


@dataclasses.dataclass(frozen=True)
class SecretRef:
    name: str


@dataclasses.dataclass(frozen=True)
class GitSource:
    url: str
    ref: str = "main"
    path: str = "."
    secret_ref: SecretRef | None = None


@dataclasses.dataclass(frozen=True)
class InlineSource:
    dockerfile: str
    scripts: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Source:
    git: GitSource | None = None
    inline: InlineSource | None = None


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    registry: str
    repository: str
    tag: str = DEFAULT_TAG_TEMPLATE
    push_secret_ref: SecretRef | None = None


@dataclasses.dataclass(frozen=True)
class AcrRef:
    subscription_id: str
    resource_group: str
    name: str
    credentials_secret_ref: SecretRef | None = None


@dataclasses.dataclass(frozen=True)
class RegistryAccess:
    acr: AcrRef
    mode: RegistryAccessMode = RegistryAccessMode.ANONYMOUS_PULL
    principal_ids: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class CatalogGit:
    url: str
    branch: str = "main"
    secret_ref: SecretRef | None = None


@dataclasses.dataclass(frozen=True)
class CommitSpec:
    author_name: str = DEFAULT_AUTHOR_NAME
    author_email: str = DEFAULT_AUTHOR_EMAIL
    message_template: str = DEFAULT_COMMIT_MESSAGE


@dataclasses.dataclass(frozen=True)
class CatalogSync:
    """The ADE catalog to sync after a commit: a dev center's catalog or a project's."""

    subscription_id: str
    resource_group: str
    catalog: str
    dev_center: str = ""
    project: str = ""
    credentials_secret_ref: SecretRef | None = None


@dataclasses.dataclass(frozen=True)
class CatalogSigning:
    """The Secret with the key that signs the operator's commits (`controller.git.signing`)."""

    secret_ref: SecretRef


class PullRequestProvider(enum.StrEnum):
    GITHUB = "GitHub"
    AZURE_REPOS = "AzureRepos"


@dataclasses.dataclass(frozen=True)
class PullRequestSpec:
    """One pull request from the push branch into the branch (`controller.hosting.pulls`)."""

    provider: PullRequestProvider = PullRequestProvider.GITHUB
    api_url: str = ""
    """The host's API: GitHub's (empty: https://api.github.com for github.com), or Azure Repos'
    organization URL (empty: from a dev.azure.com or *.visualstudio.com git URL)."""
    repository: str = ""
    """GitHub's `owner/name`, Azure Repos' `project/name` (empty: from the git URL)."""
    secret_ref: SecretRef | None = None
    """The Secret with the API token (key `token`); None: the git Secret's token or password."""
    title: str = ""
    """The title (empty: the one commit's subject, or a count)."""
    interval: str | None = None
    """How often an open pull request is looked at (None: the default, 1m)."""


@dataclasses.dataclass(frozen=True)
class Catalog:
    git: CatalogGit
    manifests: tuple[str, ...]
    field: str = "runner"
    pin: PinMode = PinMode.TAG
    commit: CommitSpec = CommitSpec()
    push_branch: str = ""
    sync: CatalogSync | None = None
    adopt: tuple[str, ...] = ()
    """Values (`*` wildcards) of the field this RunnerImage takes over; empty: any value that no
    other RunnerImage's repository names."""
    on_human_edit: HumanEditPolicy = HumanEditPolicy.KEEP
    interval: str | None = None
    """How often the branch is checked for changes to the files (None: the default, 5m)."""
    format: CatalogFormat = CatalogFormat.ENVIRONMENT_DEFINITION
    repository_field: str = ""
    """With format YAML: the path that gets the repository, `field` then getting the tag."""
    signing: CatalogSigning | None = None
    """How the operator's commits are signed (None: unsigned)."""
    pull_request: PullRequestSpec | None = None
    """Open a pull request from `push_branch` into the branch (None: the push is the end)."""


@dataclasses.dataclass(frozen=True)
class Trigger:
    interval: str | None = None
    enabled: bool = True


@dataclasses.dataclass(frozen=True)
class Triggers:
    base_image: Trigger = Trigger()
    source: Trigger = Trigger()


@dataclasses.dataclass(frozen=True)
class ResourceRequirements:
    """The Job backend's build container resources; quantities as text ("500m", "4Gi")."""

    requests: Mapping[str, str] = dataclasses.field(default_factory=dict)
    limits: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration of the Job backend's build pod (an empty effect: every effect)."""

    key: str = ""
    operator: TolerationOperator = TolerationOperator.EQUAL
    value: str = ""
    effect: TaintEffect | None = None
    toleration_seconds: int | None = None


@dataclasses.dataclass(frozen=True)
class Attestations:
    """The attestations BuildKit attaches to the pushed image (an image index then holds the
    platform manifest and one attestation manifest per platform). The BuildKit backends only:
    the Docker Engine's classic image store cannot hold them."""

    provenance: ProvenanceMode = ProvenanceMode.MIN
    sbom: bool = False
    sbom_generator: str | None = None
    """The SBOM scanner image (BuildKit's SBOM protocol); None: BuildKit's default
    (`docker/buildkit-syft-scanner`), which the builder must be able to pull."""

    @property
    def default(self) -> bool:
        return self == Attestations()


@dataclasses.dataclass(frozen=True)
class BuildSpec:
    """How the image is built. Resources and placement (node selector, tolerations, service
    account) apply to the Job backend only, and are not part of the build key: where a build
    runs does not change the image."""

    backend: BuildBackend = BuildBackend.JOB
    timeout: str = "30m"
    resources: ResourceRequirements = ResourceRequirements()
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    service_account_name: str | None = None
    attestations: Attestations = Attestations()


@dataclasses.dataclass(frozen=True)
class HistoryLimit:
    succeeded: int = 5
    failed: int = 5


@dataclasses.dataclass(frozen=True)
class Retention:
    """Which pushed images to keep (`controller.retention`); the others this RunnerImage built
    are deleted from its repository."""

    keep_last: int = 10
    keep_for: str = "0s"
    dry_run: bool = False
    interval: str = "1h"


class SignatureProvider(enum.StrEnum):
    NOTATION = "Notation"


@dataclasses.dataclass(frozen=True)
class ImageSigning:
    """Sign every pushed image (`spec.signing`): a Notary Project signature, stored in the
    registry as an OCI referrer of the image, made with the key and certificate chain of a
    `kubernetes.io/tls` Secret (`tls.key`, `tls.crt`, optional `ca.crt`)."""

    secret_ref: SecretRef
    provider: SignatureProvider = SignatureProvider.NOTATION


@dataclasses.dataclass(frozen=True)
class BaseImageVerification:
    """Build only on a base image signed by a trusted certificate
    (`spec.baseImageVerification`): the Secret's `*.crt` and `*.pem` keys are the trusted
    root or signing certificates."""

    secret_ref: SecretRef
    provider: SignatureProvider = SignatureProvider.NOTATION


@dataclasses.dataclass(frozen=True)
class RunnerImageSpec:
    source: Source
    image: ImageSpec
    dockerfile: str = "Dockerfile"
    build_args: Mapping[str, str] = dataclasses.field(default_factory=dict)
    platforms: tuple[str, ...] = ("linux/amd64",)
    target: str | None = None
    registry_access: RegistryAccess | None = None
    catalog: Catalog | None = None
    triggers: Triggers = Triggers()
    build: BuildSpec = BuildSpec()
    history_limit: HistoryLimit = HistoryLimit()
    suspend: bool = False
    retention: Retention | None = None
    signing: ImageSigning | None = None
    base_image_verification: BaseImageVerification | None = None


class _Reader:
    """Reads one mapping of the raw spec, naming fields by their full path in errors."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise errors.SpecError(path, "must be an object")
        self._raw = raw
        self.path = path

    def has(self, key: str) -> bool:
        return self._raw.get(key) is not None

    def _get(self, key: str, kind: type, default: Any) -> Any:
        value = self._raw.get(key)
        if value is None:
            if default is _REQUIRED:
                raise errors.SpecError(f"{self.path}.{key}", "is required")
            return default
        if kind is int and isinstance(value, bool):
            raise errors.SpecError(f"{self.path}.{key}", "must be an integer")
        if not isinstance(value, kind):
            raise errors.SpecError(f"{self.path}.{key}", f"must be of type {kind.__name__}")
        return value

    def text(self, key: str, default: Any = None) -> Any:
        return self._get(key, str, default)

    def required_str(self, key: str) -> str:
        value: str = self._get(key, str, _REQUIRED)
        return value

    def flag(self, key: str, default: bool) -> bool:
        value: bool = self._get(key, bool, default)
        return value

    def integer(self, key: str, default: int) -> int:
        value: int = self._get(key, int, default)
        return value

    def optional_integer(self, key: str) -> int | None:
        value: int | None = self._get(key, int, None)
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        items = self._get(key, list, None)
        if items is None:
            return default
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise errors.SpecError(f"{self.path}.{key}[{index}]", "must be a string")
        return tuple(items)

    def string_map(self, key: str, *, brackets: bool = False) -> dict[str, str]:
        """A map of strings; `brackets` names an entry `key[name]`, as Kubernetes names a label."""
        mapping = self._get(key, Mapping, {})
        for name, value in mapping.items():
            if not isinstance(value, str):
                entry = f"{key}[{name}]" if brackets else f"{key}.{name}"
                raise errors.SpecError(f"{self.path}.{entry}", "must be a string")
        return dict(mapping)

    def quantities(self, key: str) -> dict[str, str]:
        """A map of resource names to quantities; an integer quantity (`cpu: 2`) becomes text."""
        mapping = self._get(key, Mapping, {})
        out: dict[str, str] = {}
        for name, value in mapping.items():
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise errors.SpecError(
                    f"{self.path}.{key}[{name}]", "must be a quantity (a string or an integer)"
                )
            out[str(name)] = str(value)
        return out

    def child(self, key: str) -> _Reader | None:
        if not self.has(key):
            return None
        return _Reader(self._raw[key], f"{self.path}.{key}")

    def children(self, key: str) -> list[_Reader]:
        """The objects of a list, each named `path.key[index]`."""
        items = self._get(key, list, [])
        return [_Reader(item, f"{self.path}.{key}[{index}]") for index, item in enumerate(items)]

    def enum(self, key: str, kind: type[enum.StrEnum], default: enum.StrEnum | None) -> Any:
        value = self.text(key)
        if value is None:
            return default
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise errors.SpecError(
                f"{self.path}.{key}", f"must be one of {allowed} (got {value!r})"
            ) from None


_REQUIRED = object()


def _secret_ref(reader: _Reader, key: str) -> SecretRef | None:
    child = reader.child(key)
    return None if child is None else SecretRef(name=child.required_str("name"))


def _source(reader: _Reader) -> Source:
    git = reader.child("git")
    inline = reader.child("inline")
    return Source(
        git=None
        if git is None
        else GitSource(
            url=git.required_str("url"),
            ref=git.text("ref", "main"),
            path=git.text("path", "."),
            secret_ref=_secret_ref(git, "secretRef"),
        ),
        inline=None
        if inline is None
        else InlineSource(
            dockerfile=inline.required_str("dockerfile"),
            scripts=inline.string_map("scripts"),
        ),
    )


def _image(reader: _Reader) -> ImageSpec:
    return ImageSpec(
        registry=reader.required_str("registry"),
        repository=reader.required_str("repository"),
        tag=reader.text("tag", DEFAULT_TAG_TEMPLATE),
        push_secret_ref=_secret_ref(reader, "pushSecretRef"),
    )


def _registry_access(reader: _Reader) -> RegistryAccess:
    acr = reader.child("acr")
    if acr is None:
        raise errors.SpecError(f"{reader.path}.acr", "is required")
    return RegistryAccess(
        acr=AcrRef(
            subscription_id=acr.required_str("subscriptionId"),
            resource_group=acr.required_str("resourceGroup"),
            name=acr.required_str("name"),
            credentials_secret_ref=_secret_ref(acr, "credentialsSecretRef"),
        ),
        mode=reader.enum("mode", RegistryAccessMode, RegistryAccessMode.ANONYMOUS_PULL),
        principal_ids=reader.strings("principalIds"),
    )


def _catalog(reader: _Reader) -> Catalog:
    git = reader.child("git")
    if git is None:
        raise errors.SpecError(f"{reader.path}.git", "is required")
    commit = reader.child("commit")
    return Catalog(
        git=CatalogGit(
            url=git.required_str("url"),
            branch=git.text("branch", "main"),
            secret_ref=_secret_ref(git, "secretRef"),
        ),
        manifests=reader.strings("manifests"),
        field=reader.text("field", "runner"),
        pin=reader.enum("pin", PinMode, PinMode.TAG),
        commit=CommitSpec()
        if commit is None
        else CommitSpec(
            author_name=commit.text("authorName", DEFAULT_AUTHOR_NAME),
            author_email=commit.text("authorEmail", DEFAULT_AUTHOR_EMAIL),
            message_template=commit.text("messageTemplate", DEFAULT_COMMIT_MESSAGE),
        ),
        push_branch=reader.text("pushBranch", ""),
        sync=_catalog_sync(reader.child("sync")),
        adopt=reader.strings("adopt"),
        on_human_edit=reader.enum("onHumanEdit", HumanEditPolicy, HumanEditPolicy.KEEP),
        interval=reader.text("interval"),
        format=reader.enum("format", CatalogFormat, CatalogFormat.ENVIRONMENT_DEFINITION),
        repository_field=reader.text("repositoryField", ""),
        signing=_signing(reader.child("signing")),
        pull_request=_pull_request(reader.child("pullRequest")),
    )


def _pull_request(reader: _Reader | None) -> PullRequestSpec | None:
    if reader is None:
        return None
    return PullRequestSpec(
        provider=reader.enum("provider", PullRequestProvider, PullRequestProvider.GITHUB),
        api_url=reader.text("apiUrl", ""),
        repository=reader.text("repository", ""),
        secret_ref=_secret_ref(reader, "secretRef"),
        title=reader.text("title", ""),
        interval=reader.text("interval"),
    )


def _signing(reader: _Reader | None) -> CatalogSigning | None:
    if reader is None:
        return None
    ref = _secret_ref(reader, "secretRef")
    if ref is None:
        raise errors.SpecError(f"{reader.path}.secretRef", "is required")
    return CatalogSigning(secret_ref=ref)


def _catalog_sync(reader: _Reader | None) -> CatalogSync | None:
    if reader is None:
        return None
    sync = CatalogSync(
        subscription_id=reader.required_str("subscriptionId"),
        resource_group=reader.required_str("resourceGroup"),
        catalog=reader.required_str("catalog"),
        dev_center=reader.text("devCenter", ""),
        project=reader.text("project", ""),
        credentials_secret_ref=_secret_ref(reader, "credentialsSecretRef"),
    )
    if bool(sync.dev_center) == bool(sync.project):
        raise errors.SpecError(reader.path, "exactly one of devCenter and project must be set")
    return sync


def _trigger(reader: _Reader | None) -> Trigger:
    if reader is None:
        return Trigger()
    return Trigger(interval=reader.text("interval"), enabled=reader.flag("enabled", True))


def _build(reader: _Reader) -> BuildSpec:
    resources = reader.child("resources")
    return BuildSpec(
        backend=reader.enum("backend", BuildBackend, BuildBackend.JOB),
        timeout=reader.text("timeout", "30m"),
        resources=ResourceRequirements()
        if resources is None
        else ResourceRequirements(
            requests=resources.quantities("requests"), limits=resources.quantities("limits")
        ),
        node_selector=reader.string_map("nodeSelector", brackets=True),
        tolerations=tuple(_toleration(item) for item in reader.children("tolerations")),
        service_account_name=reader.text("serviceAccountName"),
        attestations=_attestations(reader.child("attestations")),
    )


def _attestations(reader: _Reader | None) -> Attestations:
    if reader is None:
        return Attestations()
    return Attestations(
        provenance=reader.enum("provenance", ProvenanceMode, ProvenanceMode.MIN),
        sbom=reader.flag("sbom", False),
        sbom_generator=reader.text("sbomGenerator"),
    )


def _toleration(reader: _Reader) -> Toleration:
    return Toleration(
        key=reader.text("key", ""),
        operator=reader.enum("operator", TolerationOperator, TolerationOperator.EQUAL),
        value=reader.text("value", ""),
        effect=reader.enum("effect", TaintEffect, None),
        toleration_seconds=reader.optional_integer("tolerationSeconds"),
    )


def parse(raw: Mapping[str, Any]) -> RunnerImageSpec:
    """Shape a raw `spec` mapping into the typed model; raise SpecError naming the field."""
    spec = _Reader(raw, "spec")
    source = spec.child("source")
    image = spec.child("image")
    if source is None:
        raise errors.SpecError("spec.source", "is required")
    if image is None:
        raise errors.SpecError("spec.image", "is required")
    access = spec.child("registryAccess")
    catalog = spec.child("catalog")
    triggers = spec.child("triggers")
    build = spec.child("build")
    history = spec.child("historyLimit")
    retention = spec.child("retention")
    signing = _signature_secret(spec.child("signing"), "spec.signing")
    base_check = _signature_secret(
        spec.child("baseImageVerification"), "spec.baseImageVerification"
    )
    return RunnerImageSpec(
        source=_source(source),
        image=_image(image),
        dockerfile=spec.text("dockerfile", "Dockerfile"),
        build_args=spec.string_map("buildArgs"),
        platforms=spec.strings("platforms", ("linux/amd64",)),
        target=spec.text("target"),
        registry_access=None if access is None else _registry_access(access),
        catalog=None if catalog is None else _catalog(catalog),
        triggers=Triggers()
        if triggers is None
        else Triggers(
            base_image=_trigger(triggers.child("baseImage")),
            source=_trigger(triggers.child("source")),
        ),
        build=BuildSpec() if build is None else _build(build),
        history_limit=HistoryLimit()
        if history is None
        else HistoryLimit(
            succeeded=history.integer("succeeded", 5), failed=history.integer("failed", 5)
        ),
        suspend=spec.flag("suspend", False),
        retention=None
        if retention is None
        else Retention(
            keep_last=retention.integer("keepLast", 10),
            keep_for=retention.text("keepFor", "0s"),
            dry_run=retention.flag("dryRun", False),
            interval=retention.text("interval", "1h"),
        ),
        signing=None if signing is None else ImageSigning(*signing),
        base_image_verification=None if base_check is None else BaseImageVerification(*base_check),
    )


def _signature_secret(
    reader: _Reader | None, field: str
) -> tuple[SecretRef, SignatureProvider] | None:
    if reader is None:
        return None
    ref = _secret_ref(reader, "secretRef")
    if ref is None:
        raise errors.SpecError(f"{field}.secretRef", "is required")
    return ref, reader.enum("provider", SignatureProvider, SignatureProvider.NOTATION)
