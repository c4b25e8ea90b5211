"""Deterministic contention on a branch of the test git server: a competitor inside the server.

A `pre-receive` hook of the bare repository plays another writer that always wins the race: for
each push it is told to beat, it commits an unrelated file (`competitor/<n>.txt`) on the branch
and moves the branch itself, then lets the push proceed, which git then refuses exactly as when a
real writer landed between the pusher's fetch and its push (`[remote rejected] (failed to update
ref)` / `cannot lock ref`). No thread, no timing: which pushes lose is decided by a count and a
switch, not by how fast anything runs.

- `Contention(server, repo, beat=k)`: the first `k` pushes to the branch lose.
- `hold()` / `release()`: while held, every push loses (contention that outlasts any number of
  attempts); released, the next push lands.
- `beaten()`: how many pushes lost so far; `commits()`: the competitor's commits, oldest first,
  which must all stay in the branch's history (nothing of the other writer lost).

Only pushes over HTTP run the hook (the server's own `create_repo`/`commit` write the bare
repository through a clone, and also run it: install the contention after setting up).
"""

from __future__ import annotations

import pathlib
import shlex

from tests.env import gitserver

_HOOK = """\
#!/bin/sh
# The competitor of tests/env/contention.py: moves {ref} before this push can.
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
state={state}
bare={bare}
while read -r old new ref; do
  [ "$ref" = {ref} ] || continue
  count=$(cat "$state/count")
  if [ ! -e "$state/hold" ] && [ "$count" -ge "$(cat "$state/beat")" ]; then
    continue
  fi
  count=$((count + 1))
  echo "$count" > "$state/count"
  head=$(git --git-dir="$bare" rev-parse {ref})
  blob=$(echo "competitor $count" | git --git-dir="$bare" hash-object -w --stdin)
  GIT_INDEX_FILE="$state/index" git --git-dir="$bare" read-tree "$head"
  GIT_INDEX_FILE="$state/index" git --git-dir="$bare" update-index --add \\
    --cacheinfo "100644,$blob,competitor/$count.txt"
  tree=$(GIT_INDEX_FILE="$state/index" git --git-dir="$bare" write-tree)
  commit=$(git --git-dir="$bare" commit-tree "$tree" -p "$head" -m "Competitor $count")
  git --git-dir="$bare" update-ref {ref} "$commit" "$head"
  echo "$commit" >> "$state/commits"
done
exit 0
"""


class Contention:
    """A competitor that beats the first `beat` pushes to `branch` of `repo` (and every push
    while held); see the module docstring."""

    def __init__(
        self, server: gitserver.GitServer, repo: str, *, beat: int = 0, branch: str = "main"
    ) -> None:
        bare = server.path(repo)
        self.state = server.folder / f"{repo}.contention"
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "count").write_text("0\n")
        (self.state / "beat").write_text(f"{beat}\n")
        (self.state / "commits").write_text("")
        hook = bare / "hooks" / "pre-receive"
        hook.write_text(
            _HOOK.format(
                state=shlex.quote(str(self.state)),
                bare=shlex.quote(str(bare.resolve())),
                ref=shlex.quote(f"refs/heads/{branch}"),
            )
        )
        hook.chmod(0o755)

    @property
    def _hold(self) -> pathlib.Path:
        return self.state / "hold"

    def hold(self) -> None:
        """Every push loses until `release`."""
        self._hold.touch()

    def release(self) -> None:
        """Pushes beyond the first `beat` land again."""
        self._hold.unlink(missing_ok=True)

    def beaten(self) -> int:
        """How many pushes lost to the competitor so far."""
        return int((self.state / "count").read_text())

    def commits(self) -> list[str]:
        """The competitor's commits, oldest first."""
        return (self.state / "commits").read_text().split()
