"""`controller.catalog.ownership`: one owner per catalog file, human edits kept (pure)."""

from __future__ import annotations

import pytest

from controller.catalog import ownership
from controller.catalog.ownership import Decision, Record, Verdict

MINE = "acr.example.test/runners/bicep"
OURS_V1, OURS_V2 = f"{MINE}:v1", f"{MINE}:v2"
CORE = "mcr.microsoft.com/deployment-environments/runners/core:latest"
OTHERS = {"acr.example.test/runners/terraform": "team/terraform"}


def _decide(
    current: str | None,
    *,
    adopt: tuple[str, ...] = (),
    record: Record | None = None,
    overwrite: bool = False,
) -> Decision:
    return ownership.decide(
        current,
        value=OURS_V2,
        mine=MINE,
        others=OTHERS,
        adopt=adopt,
        record=record,
        overwrite=overwrite,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("acr.example.test/runners/bicep:v1", MINE),
        ("ACR.example.test/runners/bicep@sha256:" + "a" * 64, MINE),
        ("acr.example.test/runners/bicep:v1@sha256:" + "a" * 64, MINE),
        ("localhost:5000/runners/bicep:v1", "localhost:5000/runners/bicep"),
        ("localhost:5000/runners/bicep", "localhost:5000/runners/bicep"),
        ("Bicep", None),
        ("", None),
        (None, None),
    ],
)
def test_repository_of(value: str | None, expected: str | None) -> None:
    assert ownership.repository_of(value) == expected


def test_a_file_already_holding_the_value_is_synced() -> None:
    assert _decide(OURS_V2).verdict is Verdict.SYNCED


def test_a_file_naming_our_repository_is_ours_at_any_tag() -> None:
    assert _decide(OURS_V1).verdict is Verdict.WRITE
    assert _decide(f"{MINE}@sha256:{'b' * 64}").verdict is Verdict.WRITE


def test_a_file_nobody_owns_is_taken_without_adopt_and_left_with_it() -> None:
    assert _decide(CORE).verdict is Verdict.WRITE
    assert _decide(None).verdict is Verdict.WRITE
    assert _decide(CORE, adopt=("Bicep",)).verdict is Verdict.NOT_ADOPTED


def test_adopt_patterns_take_matching_values() -> None:
    adopt = ("Bicep", "mcr.microsoft.com/deployment-environments/runners/core:*")
    assert _decide("Bicep", adopt=adopt).verdict is Verdict.WRITE
    assert _decide(CORE, adopt=adopt).verdict is Verdict.WRITE
    assert _decide("Terraform", adopt=adopt).verdict is Verdict.NOT_ADOPTED


def test_another_runner_images_file_is_a_conflict_never_a_write() -> None:
    theirs = "acr.example.test/runners/terraform:7"
    assert _decide(theirs) == Decision(Verdict.CONFLICT, "team/terraform")
    assert _decide(theirs, adopt=("*",)) == Decision(Verdict.NOT_ADOPTED, "team/terraform")
    record = Record(found=CORE, written=OURS_V1)
    assert _decide(theirs, record=record, overwrite=True).verdict is Verdict.CONFLICT


def test_a_human_rollback_to_our_older_tag_is_kept() -> None:
    """Argo CD Image Updater #1249: a person rolled the file back; the next build must not
    overwrite it."""
    record = Record(found=CORE, written=OURS_V1)
    rollback = f"{MINE}:v0"
    assert _decide(rollback, record=record).verdict is Verdict.PINNED
    assert _decide("Bicep", record=record).verdict is Verdict.PINNED
    assert _decide(rollback, record=record, overwrite=True).verdict is Verdict.WRITE


def test_what_we_wrote_or_found_is_not_a_human_edit() -> None:
    record = Record(found=CORE, written=OURS_V1)
    assert _decide(OURS_V1, record=record).verdict is Verdict.WRITE
    assert _decide(CORE, record=record).verdict is Verdict.WRITE
    assert _decide(None, record=Record(found=None, written=OURS_V1)).verdict is Verdict.WRITE


def test_combine_reports_what_stops_a_write_first() -> None:
    write, synced = Decision(Verdict.WRITE), Decision(Verdict.SYNCED)
    pinned, conflict = Decision(Verdict.PINNED), Decision(Verdict.CONFLICT, "a/b")
    assert ownership.combine([synced, write]) == write
    assert ownership.combine([write, pinned, conflict]) == conflict
    assert ownership.combine([synced]) == synced
    assert ownership.combine([]) == synced
