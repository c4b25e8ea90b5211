"""git over its CLI, for every user of git in the operator (build sources, the catalog writer).

`process` runs one git process; `environment` builds its isolated environment and places the
credentials (`credentials`); `failures` is the one family of typed errors and the one reading of
git's output; `refs` the one branch-name rule. Users say who they are (`failures.Purpose`), which
decides the condition reasons.
"""
