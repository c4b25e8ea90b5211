"""How the image reference is written into one catalog file, by `spec.catalog.format`.

- `EnvironmentDefinition` (ADE's `environment.yaml`/`manifest.yaml`, the default): the top-level
  `field` of every environment definition in the file (`manifests.set_field`).
- `YAML` (any YAML: Helm values, Kubernetes manifests, Kustomize files): `field` is a path
  (`yamlpath`) that gets the full reference; or, with `repository_field`, the repository goes
  there and the tag (or, pinned by digest, the digest) into `field`, as Helm charts
  (`image.repository`/`image.tag`) and Kustomize (`images[name=app].newName`/`newTag`) split it.

`write` answers the edit and, per document edited, the reference the file held before (composed
again from its parts when split), which is what catalog ownership decides on. Pure.
"""

from __future__ import annotations

import dataclasses

from controller.api import spec as model
from controller.catalog import manifests, yamlpath


@dataclasses.dataclass(frozen=True)
class Target:
    format: model.CatalogFormat = model.CatalogFormat.ENVIRONMENT_DEFINITION
    field: str = "runner"
    repository_field: str = ""

    @classmethod
    def of(cls, catalog: model.Catalog) -> Target:
        return cls(catalog.format, catalog.field, catalog.repository_field)


def split_reference(value: str) -> tuple[str, str]:
    """(repository, tag or digest) of `registry/repository:tag` or `registry/repository@digest`."""
    if "@" in value:
        name, _, digest = value.partition("@")
        slash, colon = name.rfind("/"), name.rfind(":")
        return (name[:colon] if colon > slash else name), digest
    slash, colon = value.rfind("/"), value.rfind(":")
    if colon <= slash:
        raise ValueError(f"{value!r} has no tag or digest to write apart")
    return value[:colon], value[colon + 1 :]


def join_reference(repository: str | None, tag: str | None) -> str | None:
    """The reference a split pair names (None when the repository is empty)."""
    if not repository:
        return None
    if not tag:
        return repository
    return f"{repository}@{tag}" if tag.startswith("sha") and ":" in tag else f"{repository}:{tag}"


def write(
    text: str, target: Target, value: str, *, path: str
) -> tuple[manifests.Edit, tuple[str | None, ...]]:
    """Set `value` in the text of file `path` as `target` says; (the edit, what each edited
    document held before). Raises `manifests.ManifestInvalid` naming the file."""
    if target.format is model.CatalogFormat.ENVIRONMENT_DEFINITION:
        edit = manifests.set_field(text, field=target.field, value=value, path=path)
        return edit, edit.previous
    if not target.repository_field:
        edit, found = yamlpath.set_paths(text, [(target.field, value)], path=path)
        return edit, tuple(values[0] for values in found)
    repository, tag = split_reference(value)
    edit, found = yamlpath.set_paths(
        text, [(target.repository_field, repository), (target.field, tag)], path=path
    )
    return edit, tuple(join_reference(*values) for values in found)
