"""The final state of a few paths in an image's merged filesystem, decided from its layers read
top-down. Pure: members come in as values, whoever reads the tarballs.

Why top-down: a path is decided by the topmost layer that says anything about it, so once every
wanted path is decided the lower layers (usually the big base layers) need not be read at all.
What a layer can say about a wanted path `P` (the OCI image spec's changeset rules, as overlayfs
and containerd apply them):

- An ancestor of `P` that is not a directory in the layer decides `P`: a symlink there (say
  `/scripts -> /opt/scripts`) makes `P` "not a regular file" (reported, not followed); a regular
  file there means `P` does not exist. If a layer above already holds that ancestor as a
  directory, the directory replaced it, and with it everything below: `P` is absent.
- An entry named `P` decides it: a regular file (mode, and the contents the reader captured), or
  a directory, symlink, device, FIFO (not a regular file). A hard link is resolved to its target
  in the same layer (tar hard links always point into their own archive); when the target was not
  captured, `link_targets` names it so the reader can read the layer again keeping it, and when
  the layer does not hold it the path is "unresolved".
- A whiteout `.wh.<name>` of `P` or of an ancestor deletes it from the layers below: absent.
- An opaque marker `.wh..wh..opq` in an ancestor hides that directory's lower contents: absent.
- Otherwise the layer leaves `P` to the layers below; a path no layer decides is absent.

Names are normalized (`./scripts/x`, `scripts/x`, `/scripts//x/` are all `/scripts/x`). Layers
are numbered as the caller says (`image` uses the manifest position, 1 for the bottom layer),
and messages quote that number.
"""

from __future__ import annotations

import dataclasses
import enum
import posixpath
from collections.abc import Iterable, Mapping, Sequence

SCRIPTS = ("/scripts/deploy.sh", "/scripts/delete.sh")
"""What ADE runs: `/scripts/<operation>.sh`."""

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_METADATA_PREFIX = ".wh..wh."  # aufs bookkeeping (`.wh..wh.plnk`, ...): not a whiteout


class Kind(enum.StrEnum):
    """A tar member's type, worded as messages use it."""

    FILE = "regular file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hard link"
    CHARACTER_DEVICE = "character device"
    BLOCK_DEVICE = "block device"
    FIFO = "FIFO"
    OTHER = "special file"


@dataclasses.dataclass(frozen=True)
class Member:
    """One tar member. `link` is a symlink's or hard link's target; `content` is set only for
    the members the reader was asked to capture (`truncated` when only a prefix was kept)."""

    name: str
    kind: Kind
    mode: int = 0o644
    size: int = 0
    link: str = ""
    content: bytes | None = dataclasses.field(default=None, repr=False)
    truncated: bool = False


class State(enum.StrEnum):
    FILE = "file"
    ABSENT = "absent"
    NOT_REGULAR = "not-regular"
    UNRESOLVED = "unresolved"
    """A hard link whose target its layer does not hold (or that could not be captured)."""


@dataclasses.dataclass(frozen=True)
class Decision:
    """The final state of one path. `layer` is the layer that decided it (None: no layer did);
    `detail` says why, as a clause for messages (`deleted by a whiteout in layer 3`)."""

    path: str
    state: State
    layer: int | None = None
    mode: int = 0
    content: bytes | None = dataclasses.field(default=None, repr=False)
    truncated: bool = False
    detail: str = ""


def normalize(name: str) -> str:
    """An archive or link name as an absolute, clean path; the root is `/`."""
    return posixpath.normpath("/" + name.lstrip("/"))


def ancestors(path: str) -> tuple[str, ...]:
    """The directories above `path`, outermost first, without the root: `/a/b/c` -> `/a`, `/a/b`."""
    parts = normalize(path).strip("/").split("/")[:-1]
    return tuple("/" + "/".join(parts[: i + 1]) for i in range(len(parts)))


@dataclasses.dataclass(frozen=True)
class LayerView:
    """What one layer says about the paths of interest: their entries (and their ancestors' and
    the hard link targets asked for), the whiteouts of them, and the ancestors made opaque."""

    entries: Mapping[str, Member]
    whiteouts: frozenset[str]
    opaque: frozenset[str]


def scan(
    members: Iterable[Member], *, paths: Iterable[str], targets: Iterable[str] = ()
) -> LayerView:
    """Keep what matters of a layer's members (consumed once, in archive order: a name that
    appears twice is its last member); everything else is dropped as it streams by."""
    wanted = {normalize(p) for p in paths}
    dirs = {a for p in wanted for a in ancestors(p)}
    relevant = wanted | dirs | {normalize(t) for t in targets}
    entries: dict[str, Member] = {}
    whiteouts: set[str] = set()
    opaque: set[str] = set()
    for member in members:
        path = normalize(member.name)
        parent, base = posixpath.split(path)
        if base == OPAQUE_MARKER:
            if parent in dirs:
                opaque.add(parent)
        elif base.startswith(_METADATA_PREFIX):
            continue
        elif base.startswith(WHITEOUT_PREFIX):
            deleted = posixpath.join(parent, base.removeprefix(WHITEOUT_PREFIX))
            if deleted in wanted or deleted in dirs:
                whiteouts.add(deleted)
        elif path in relevant:
            entries[path] = member
    return LayerView(entries, frozenset(whiteouts), frozenset(opaque))


class Resolver:
    """Decides the wanted paths layer by layer, top-down; `done` once all are decided."""

    def __init__(self, paths: Iterable[str] = SCRIPTS) -> None:
        self.paths = tuple(dict.fromkeys(normalize(p) for p in paths))
        self._decided: dict[str, Decision] = {}
        self._directories: set[str] = set()  # ancestors that upper layers hold as directories

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(p for p in self.paths if p not in self._decided)

    @property
    def done(self) -> bool:
        return not self.pending

    @property
    def decided(self) -> Mapping[str, Decision]:
        """The paths decided so far (a layer that could not be read leaves the rest open)."""
        return {p: self._decided[p] for p in self.paths if p in self._decided}

    def link_targets(self, view: LayerView) -> frozenset[str]:
        """Targets of pending paths' hard links that `view` lacks or holds without contents:
        read the layer again with these captured, then `apply` it."""
        needed: set[str] = set()
        for path in self.pending:
            member = view.entries.get(path)
            if member is None or member.kind != Kind.HARDLINK:
                continue
            target = normalize(member.link)
            found = view.entries.get(target)
            if found is None or (found.kind == Kind.FILE and found.content is None):
                needed.add(target)
        return frozenset(needed)

    def apply(self, view: LayerView, *, layer: int) -> None:
        """Take the next lower layer into account (numbered `layer` in messages)."""
        for path in self.pending:
            decision = self._decide(path, view, layer)
            if decision is not None:
                self._decided[path] = decision
        for path, member in view.entries.items():
            if member.kind == Kind.DIRECTORY:
                self._directories.add(path)

    def finish(self) -> dict[str, Decision]:
        """Every wanted path decided: those no layer mentions are absent."""
        missing = Decision("", State.ABSENT, detail="in no layer")
        return {p: self._decided.get(p) or dataclasses.replace(missing, path=p) for p in self.paths}

    def _decide(self, path: str, view: LayerView, layer: int) -> Decision | None:
        for parent in ancestors(path):
            member = view.entries.get(parent)
            if member is None or member.kind == Kind.DIRECTORY:
                continue
            what = _describe(member)
            if parent in self._directories:
                detail = f"not in the layers above layer {layer}, where {parent} is a {what}"
                return Decision(path, State.ABSENT, layer, detail=detail)
            if member.kind == Kind.SYMLINK:
                detail = f"{parent} is a {what} in layer {layer}"
                return Decision(path, State.NOT_REGULAR, layer, detail=detail)
            detail = f"{parent} is a {what} in layer {layer}"
            return Decision(path, State.ABSENT, layer, detail=detail)
        member = view.entries.get(path)
        if member is not None:
            return _entry(path, member, view, layer)
        for deleted in (path, *reversed(ancestors(path))):
            if deleted in view.whiteouts:
                of = "" if deleted == path else f" of {deleted}"
                detail = f"deleted by a whiteout{of} in layer {layer}"
                return Decision(path, State.ABSENT, layer, detail=detail)
        for parent in reversed(ancestors(path)):
            if parent in view.opaque:
                detail = f"{parent} is made opaque in layer {layer}, hiding the layers below"
                return Decision(path, State.ABSENT, layer, detail=detail)
        return None


def _describe(member: Member) -> str:
    if member.kind == Kind.SYMLINK:
        return f"symlink to {member.link}"
    if member.kind == Kind.HARDLINK:
        return f"hard link to {normalize(member.link)}"
    return str(member.kind)


def _entry(path: str, member: Member, view: LayerView, layer: int) -> Decision:
    if member.kind == Kind.FILE:
        return Decision(
            path, State.FILE, layer, member.mode & 0o7777, member.content, member.truncated
        )
    if member.kind != Kind.HARDLINK:
        detail = f"a {_describe(member)} in layer {layer}"
        return Decision(path, State.NOT_REGULAR, layer, detail=detail)
    target = normalize(member.link)
    found = view.entries.get(target)
    if found is None:
        detail = f"a hard link to {target}, which layer {layer} does not hold"
        return Decision(path, State.UNRESOLVED, layer, detail=detail)
    if found.kind != Kind.FILE:
        detail = f"a hard link to {target}, a {_describe(found)} in layer {layer}"
        return Decision(path, State.NOT_REGULAR, layer, detail=detail)
    if found.content is None:
        detail = f"a hard link to {target}, whose contents were not read"
        return Decision(path, State.UNRESOLVED, layer, detail=detail)
    return Decision(
        path,
        State.FILE,
        layer,
        found.mode & 0o7777,
        found.content,
        found.truncated,
        detail=f"a hard link to {target}",
    )


def resolve(
    layers: Sequence[Iterable[Member]], *, paths: Iterable[str] = SCRIPTS
) -> dict[str, Decision]:
    """Decide `paths` from in-memory layers given top-down (numbered from the bottom, 1 being
    the lowest), reading no layer below the one that decides the last path."""
    resolver = Resolver(paths)
    for position, layer in enumerate(layers):
        if resolver.done:
            break
        members = list(layer)
        view = scan(members, paths=resolver.pending)
        targets = resolver.link_targets(view)
        if targets:
            view = scan(members, paths=resolver.pending, targets=targets)
        resolver.apply(view, layer=len(layers) - position)
    return resolver.finish()
