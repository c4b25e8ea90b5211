"""`controller.reconcile.claims`: the write-back edit on a folder (no git): which files it
writes, which it leaves (another RunnerImage's, a human edit, a value it does not adopt), what it
reports for status, and the state read back from status."""

from __future__ import annotations

import pathlib

from controller.api import spec as model
from controller.catalog import ownership
from controller.catalog.ownership import Verdict
from controller.reconcile import claims

MINE = "acr.example.test/runners/bicep"
NEW = f"{MINE}:v2"
CORE = "mcr.microsoft.com/deployment-environments/runners/core:latest"
THEIRS = "acr.example.test/runners/terraform:7"


def _manifest(name: str, runner: str) -> str:
    return f"name: {name}\nrunner: {runner}  # kept\ntemplatePath: main.bicep\n"


def _catalog(**extra: object) -> model.Catalog:
    return model.Catalog(
        git=model.CatalogGit(url="https://git.example.test/catalog.git"),
        manifests=("envs/*/environment.yaml",),
        **extra,  # type: ignore[arg-type]
    )


def _tree(root: pathlib.Path, runners: dict[str, str]) -> None:
    for name, runner in runners.items():
        path = root / "envs" / name / "environment.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(_manifest(name, runner))


def _edit(
    catalog: model.Catalog, records: dict[str, ownership.Record] | None = None
) -> claims.CatalogEdit:
    return claims.CatalogEdit(
        catalog=catalog,
        value=NEW,
        mine=MINE,
        others={"acr.example.test/runners/terraform": "team/terraform"},
        records=records or {},
    )


def test_it_writes_its_own_and_nobodys_files_and_skips_another_owners(
    tmp_path: pathlib.Path,
) -> None:
    _tree(tmp_path, {"web": f"{MINE}:v1", "db": CORE, "tf": THEIRS, "done": NEW})
    edit = _edit(_catalog())
    changed = edit(tmp_path)
    assert sorted(changed) == ["envs/db/environment.yaml", "envs/web/environment.yaml"]
    assert (tmp_path / "envs/web/environment.yaml").read_text() == _manifest("web", NEW)
    assert (tmp_path / "envs/tf/environment.yaml").read_text() == _manifest("tf", THEIRS)
    states = {path: state.verdict for path, state in edit.states.items()}
    assert states == {
        "envs/web/environment.yaml": Verdict.SYNCED,
        "envs/db/environment.yaml": Verdict.SYNCED,
        "envs/tf/environment.yaml": Verdict.CONFLICT,
        "envs/done/environment.yaml": Verdict.SYNCED,
    }
    assert edit.written() == [
        "envs/db/environment.yaml",
        "envs/done/environment.yaml",
        "envs/web/environment.yaml",
    ]
    reason, message = edit.blocked() or ("", "")
    assert reason == "CatalogConflict"
    assert "envs/tf/environment.yaml: runner acr.example.test/runners/terraform:7 is" in message
    assert "RunnerImage team/terraform's" in message
    db = edit.states["envs/db/environment.yaml"].to_status()
    assert db == {
        "path": "envs/db/environment.yaml",
        "state": "Synced",
        "value": NEW,
        "found": CORE,
        "written": NEW,
    }


def test_a_human_edit_is_kept_and_named_then_overwritten_when_asked(tmp_path: pathlib.Path) -> None:
    rollback = f"{MINE}:known-good"
    _tree(tmp_path, {"web": rollback})
    records = {"envs/web/environment.yaml": ownership.Record(found=CORE, written=f"{MINE}:v1")}
    keep = _edit(_catalog(), records)
    assert keep(tmp_path) == []
    reason, message = keep.blocked() or ("", "")
    assert reason == "CatalogPinnedByHand"
    assert f"envs/web/environment.yaml: runner is {rollback}" in message
    # the record survives the pin, so the pin is still recognised at the next check
    files = [state.to_status() for state in keep.states.values()]
    assert claims.records_from_status(files) == records
    assert claims.blocked(claims.states_from_status(files), field="runner") == keep.blocked()

    overwrite = _edit(_catalog(on_human_edit=model.HumanEditPolicy.OVERWRITE), records)
    assert overwrite(tmp_path) == ["envs/web/environment.yaml"]
    assert overwrite.blocked() is None


def test_with_adopt_only_the_values_it_names_are_taken(tmp_path: pathlib.Path) -> None:
    _tree(tmp_path, {"bicep": "Bicep", "tf": "Terraform"})
    edit = _edit(_catalog(adopt=("Bicep",)))
    assert edit(tmp_path) == ["envs/bicep/environment.yaml"]
    assert edit.blocked() is None

    (tmp_path / "envs/bicep/environment.yaml").write_text(_manifest("bicep", "Other"))
    nothing = _edit(_catalog(adopt=("Bicep",)))
    assert nothing(tmp_path) == []
    reason, message = nothing.blocked() or ("", "")
    assert reason == "CatalogNothingAdopted"
    assert "found: Other, Terraform" in message


def test_depends_on_names_what_could_change_the_selection(tmp_path: pathlib.Path) -> None:
    _tree(tmp_path, {"web": CORE})
    edit = _edit(_catalog())
    edit(tmp_path)
    assert edit.depends_on("envs/web/environment.yaml")
    assert edit.depends_on("envs/new/environment.yaml")
    assert not edit.depends_on("docs/readme.md")
