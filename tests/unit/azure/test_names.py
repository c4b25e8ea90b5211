"""Resource ids and deterministic role assignment names."""

from __future__ import annotations

import uuid

from controller.api import spec
from controller.azure import names

SUB = "00000000-0000-4000-8000-000000000001"
ACR = spec.AcrRef(subscription_id=SUB, resource_group="rg", name="contoso")
PRINCIPAL = "11111111-2222-4333-8444-555555555555"


def test_registry_id() -> None:
    assert names.registry_id(ACR) == (
        f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry"
        "/registries/contoso"
    )


def test_catalog_ids() -> None:
    dev_center = spec.CatalogSync(SUB, "rg", "cat", dev_center="dc")
    project = spec.CatalogSync(SUB, "rg", "cat", project="proj")
    assert names.catalog_id(dev_center).endswith("/Microsoft.DevCenter/devcenters/dc/catalogs/cat")
    assert names.catalog_id(project).endswith("/Microsoft.DevCenter/projects/proj/catalogs/cat")


def test_acr_pull_role_definition_id() -> None:
    assert names.role_definition_id(SUB) == (
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
        "7f951dff-4ed2-4b4d-bf4a-a6a37f0c2e1b"
    )


def test_assignment_name_is_a_stable_guid() -> None:
    scope = names.registry_id(ACR)
    definition = names.role_definition_id(SUB)
    name = names.assignment_name(scope, definition, PRINCIPAL)
    assert names.is_guid(name)
    assert uuid.UUID(name).version == 5
    assert name == names.assignment_name(scope, definition, PRINCIPAL)
    assert name == "b39a322b-41e2-5f0f-9ee7-a39fcf4eb7ec"  # never changes across releases


def test_assignment_name_ignores_case_and_the_role_definition_prefix() -> None:
    scope = names.registry_id(ACR)
    definition = names.role_definition_id(SUB)
    name = names.assignment_name(scope, definition, PRINCIPAL)
    assert name == names.assignment_name(scope.upper() + "/", definition, PRINCIPAL.upper())
    bare = f"/providers/Microsoft.Authorization/roleDefinitions/{names.ACR_PULL_ROLE}"
    assert name == names.assignment_name(scope, bare, PRINCIPAL)


def test_assignment_name_differs_per_principal_scope_and_role() -> None:
    scope = names.registry_id(ACR)
    definition = names.role_definition_id(SUB)
    base = names.assignment_name(scope, definition, PRINCIPAL)
    other = "11111111-2222-4333-8444-555555555556"
    assert base != names.assignment_name(scope, definition, other)
    assert base != names.assignment_name(scope + "x", definition, PRINCIPAL)
    assert base != names.assignment_name(
        scope, names.role_definition_id(SUB, "acdd72a7"), PRINCIPAL
    )


def test_role_of() -> None:
    assert names.role_of(names.role_definition_id(SUB).upper()) == names.ACR_PULL_ROLE
