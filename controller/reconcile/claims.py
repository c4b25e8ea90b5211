"""The edit the write-back step hands to the catalog writer, and what it found.

`CatalogEdit` runs in the writer's worker thread on a checkout of the catalog (again after a lost
push race, unless the batch's commit is replayed): it selects the files the globs name, reads the
field of each, decides per file whether this RunnerImage may set it (`catalog.ownership`: its own
file, a value it adopts, or nobody's; never another RunnerImage's, never over a human edit unless
told to), sets it where it may, and reports every file's state (`FileState`) for status. The
records of the files it wrote (`found`, `written`) come back in the next reconcile through
`status.catalog.files`, which is how a human edit is told from the RunnerImage's own.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from controller.api import spec as model
from controller.catalog import formats, manifests, ownership, select
from controller.catalog.ownership import Verdict


@dataclasses.dataclass(frozen=True)
class FileState:
    """One selected file as the last edit found it (and left it)."""

    path: str
    verdict: Verdict
    value: str | None
    """The field's value after the edit (the first document's)."""
    found: str | None = None
    written: str | None = None
    owner: str = ""

    def record(self) -> ownership.Record | None:
        return None if self.written is None else ownership.Record(self.found, self.written)

    def to_status(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": self.path, "state": self.verdict.value}
        for key, item in (
            ("value", self.value),
            ("found", self.found),
            ("written", self.written),
            ("owner", self.owner),
        ):
            if item:
                entry[key] = item
        return entry


def states_from_status(files: Iterable[Mapping[str, Any]]) -> list[FileState]:
    """The file states `status.catalog.files` holds (as the last check left them)."""
    states = []
    for entry in files:
        if not entry.get("path"):
            continue
        try:
            verdict = Verdict(str(entry.get("state")))
        except ValueError:
            continue
        states.append(
            FileState(
                str(entry["path"]),
                verdict,
                entry.get("value"),
                found=entry.get("found"),
                written=entry.get("written"),
                owner=str(entry.get("owner") or ""),
            )
        )
    return states


def blocked(states: Iterable[FileState], *, field: str) -> tuple[str, str] | None:
    """(reason, message) when some file could not be written: another RunnerImage owns it
    (CatalogConflict), someone changed it by hand (CatalogPinnedByHand), or none of the files
    holds a value to adopt (CatalogNothingAdopted); None when every file is in sync."""
    states = list(states)
    conflicts = [s for s in states if s.verdict is Verdict.CONFLICT]
    pinned = [s for s in states if s.verdict is Verdict.PINNED]
    if conflicts:
        listed = "; ".join(
            f"{s.path}: {field} {s.value} is RunnerImage {s.owner}'s" for s in conflicts
        )
        return (
            "CatalogConflict",
            "skipped, owned by another RunnerImage (narrow spec.catalog.manifests or set"
            f" spec.catalog.adopt): {listed}",
        )
    if pinned:
        listed = "; ".join(
            f"{s.path}: {field} is {s.value}, set by someone else after this RunnerImage wrote"
            f" {s.written}"
            for s in pinned
        )
        return (
            "CatalogPinnedByHand",
            f"kept (spec.catalog.onHumanEdit: Keep; set it back or use Overwrite): {listed}",
        )
    if states and all(s.verdict is Verdict.NOT_ADOPTED for s in states):
        values = sorted({str(s.value) for s in states})
        return (
            "CatalogNothingAdopted",
            f"spec.catalog.adopt: none of the {len(states)} selected file(s) holds a value it"
            f" adopts (found: {', '.join(values)})",
        )
    return None


def records_from_status(files: Iterable[Mapping[str, Any]]) -> dict[str, ownership.Record]:
    """The records `status.catalog.files` holds of the files this RunnerImage wrote."""
    records = {}
    for entry in files:
        if entry.get("path") and entry.get("written"):
            found = entry.get("found")
            records[str(entry["path"])] = ownership.Record(
                None if found is None else str(found), str(entry["written"])
            )
    return records


@dataclasses.dataclass
class CatalogEdit:
    """Set `catalog.field` to `value` in the files this RunnerImage may write (a writer `Edit`).

    `mine`: the image repository it pushes; `others`: the repositories other RunnerImages push
    (-> their namespace/name); `records`: what it wrote before, by path.
    """

    catalog: model.Catalog
    value: str
    mine: str
    others: Mapping[str, str]
    records: Mapping[str, ownership.Record]
    matched: list[str] = dataclasses.field(default_factory=list)
    invalid: list[str] = dataclasses.field(default_factory=list)
    unmatched: tuple[str, ...] = ()
    selected: frozenset[str] = frozenset()
    """Every file the edit read (the selection, invalid ones included)."""
    states: dict[str, FileState] = dataclasses.field(default_factory=dict)

    def __call__(self, worktree: pathlib.Path) -> list[str]:
        chosen = select.select(worktree, self.catalog.manifests)
        self.matched, self.invalid, self.unmatched = list(chosen.files), [], chosen.unmatched
        self.selected, self.states = frozenset(chosen.files), {}
        self.invalid.extend(f"{r.path}: {r.reason}" for r in chosen.refused)
        changed = []
        for relative in chosen.files:
            path = worktree / relative
            try:
                text = manifests.decode(path.read_bytes(), path=relative)
                edit, previous = formats.write(
                    text, formats.Target.of(self.catalog), self.value, path=relative
                )
            except manifests.ManifestInvalid as error:
                self.invalid.append(error.message)
                self.matched.remove(relative)
                continue
            state = self._decide(relative, previous)
            self.states[relative] = state
            if state.verdict is Verdict.SYNCED and edit.changed:
                path.write_bytes(manifests.encode(edit.text))
                changed.append(relative)
        return changed

    def depends_on(self, path: str) -> bool:
        """What another writer's change must touch to change what this edit does."""
        return select.could_change(self.catalog.manifests, self.selected, path)

    def _decide(self, path: str, previous: Sequence[str | None]) -> FileState:
        record = self.records.get(path)
        decision = ownership.combine(
            [
                ownership.decide(
                    current,
                    value=self.value,
                    mine=self.mine,
                    others=self.others,
                    adopt=self.catalog.adopt,
                    record=record,
                    overwrite=self.catalog.on_human_edit is model.HumanEditPolicy.OVERWRITE,
                )
                for current in previous
            ]
        )
        current = previous[0] if previous else None
        verdict = decision.verdict
        if verdict in (Verdict.WRITE, Verdict.SYNCED):  # it holds the value once written
            found = record.found if record is not None else current
            return FileState(path, Verdict.SYNCED, self.value, found=found, written=self.value)
        if verdict is Verdict.PINNED and record is not None:
            return FileState(path, verdict, current, found=record.found, written=record.written)
        return FileState(path, verdict, current, owner=decision.owner)

    def blocked(self) -> tuple[str, str] | None:
        return blocked(self.states.values(), field=self.catalog.field)

    def written(self) -> list[str]:
        """The files that point at the value now (written now or before)."""
        return sorted(s.path for s in self.states.values() if s.verdict is Verdict.SYNCED)
