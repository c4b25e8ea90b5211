"""Properties of the templates a spec holds: `spec.image.tag` (checked by
`reconcile.validate`, rendered by `builds.identity.render_tag`) and
`spec.catalog.commit.messageTemplate` (rendered when the catalog commit is written).

Templates are generated from literal text (tag characters and others), braces, placeholders
known and unknown, conversions (`!s`, `!r`, `!a`, `!z`) and format specs (widths, fills,
alignments, precisions, type codes, nested fields).

- The validation refuses a template with messages naming the field, or accepts it; it never
  raises.
- An accepted tag template renders, for any revision, build key and time, to a valid tag.
- An accepted commit message template renders for any values.
"""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller import errors
from controller.api import spec as model
from controller.builds import identity
from controller.reconcile import validate
from controller.registry import reference

TAG_NAMES = sorted(validate.TAG_PLACEHOLDERS)
COMMIT_NAMES = sorted(validate.COMMIT_PLACEHOLDERS)


def _placeholder(names: list[str]) -> st.SearchStrategy[str]:
    name = st.sampled_from([*names, "other", "", "0", "revision[0]"])
    conversion = st.sampled_from(["", "", "!s", "!r", "!a", "!z"])
    spec = st.one_of(
        st.just(""),
        st.builds(
            lambda fill, align, width, precision, code: f":{fill}{align}{width}{precision}{code}",
            st.sampled_from(["", "_", ".", "-", " ", "x"]),
            st.sampled_from(["", "<", ">", "^", "="]),
            st.sampled_from(["", "0", "1", "7", "12", "40", "130"]),
            st.sampled_from(["", ".0", ".1", ".7", ".12"]),
            st.sampled_from(["", "", "s", "d", "x", "%"]),
        ),
        st.sampled_from([":%Y", ":{shortRevision}", ":{", ":}"]),
    )
    return st.builds(lambda n, c, s: "{" + n + c + s + "}", name, conversion, spec)


def _templates(names: list[str]) -> st.SearchStrategy[str]:
    literal = st.text("abcv019._-:/ {}", max_size=4)
    return st.lists(st.one_of(literal, _placeholder(names)), max_size=4).map("".join)


def _spec(tag: str = "{shortRevision}", message: str | None = None) -> model.RunnerImageSpec:
    raw: dict[str, Any] = {
        "source": {"inline": {"dockerfile": "FROM scratch\n", "scripts": {"deploy.sh": "x"}}},
        "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner", "tag": tag},
    }
    if message is not None:
        raw["catalog"] = {
            "git": {"url": "https://example.com/catalog.git"},
            "manifests": ["Environments/**/environment.yaml"],
            "commit": {"messageTemplate": message},
        }
    return model.parse(raw)


def _problems(spec: model.RunnerImageSpec, field: str) -> list[str]:
    found = [problem.message for problem in validate.problems(spec)]
    return [message for message in found if message.startswith(f"{field}:")]


revisions = st.one_of(
    st.binary(min_size=20, max_size=20).map(bytes.hex),
    st.binary(min_size=16, max_size=16).map(lambda b: f"inline-{b.hex()}"),
)
keys = st.binary(min_size=32, max_size=32).map(bytes.hex)
times = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2999, 12, 31)
).map(lambda t: t.replace(tzinfo=datetime.UTC))


@given(_templates(TAG_NAMES), revisions, keys, times)
def test_an_accepted_tag_template_renders_a_valid_tag(
    template: str, revision: str, key: str, at: datetime.datetime
) -> None:
    problems = _problems(_spec(tag=template), "spec.image.tag")
    if problems:
        return
    tag = identity.render_tag(template, revision=revision, key=key, at=at)
    reference.validate_tag(tag)


@given(_templates(TAG_NAMES))
def test_the_tag_template_check_refuses_or_accepts(template: str) -> None:
    for problem in validate.problems(_spec(tag=template)):
        assert isinstance(problem, errors.SpecError)
        assert problem.message.startswith(f"{problem.field}: ")


@given(_templates(COMMIT_NAMES), st.text(max_size=20))
def test_an_accepted_commit_template_renders(template: str, value: str) -> None:
    problems = _problems(_spec(message=template), "spec.catalog.commit.messageTemplate")
    if problems:
        return
    template.format_map(dict.fromkeys(COMMIT_NAMES, value))
