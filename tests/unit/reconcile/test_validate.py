"""Spec rules beyond the CRD schema (controller.reconcile.validate): paths, URLs, templates,
the build pod's resources and placement."""

from __future__ import annotations

from typing import Any

import pytest

from controller import errors
from controller.api import spec as model
from controller.reconcile import validate

TAG_KNOWN = "(known: {buildKey}, {revision}, {shortBuildKey}, {shortRevision}, {timestamp})"
COMMIT_KNOWN = "(known: {digest}, {files}, {image}, {name}, {namespace}, {reason})"
SECRET_HINT = "must not embed credentials in the URL; put them in a Secret named by"


def raw_spec() -> dict[str, Any]:
    """A valid spec that uses every rule-bearing field."""
    return {
        "source": {"git": {"url": "https://github.com/org/runner.git", "path": "."}},
        "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
        "catalog": {
            "git": {"url": "https://github.com/org/catalog.git", "branch": "main"},
            "manifests": ["Environments/**/environment.yaml", "other.yaml"],
        },
        "triggers": {"baseImage": {"interval": "6h"}, "source": {"interval": "1m"}},
        "build": {
            "timeout": "30m",
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"memory": "2Gi"},
            },
            "nodeSelector": {"kubernetes.io/arch": "amd64"},
            "tolerations": [{"key": "dedicated", "value": "builds", "effect": "NoSchedule"}],
            "serviceAccountName": "runner-builds",
        },
    }


def messages(raw: dict[str, Any]) -> list[str]:
    return [problem.message for problem in validate.problems(model.parse(raw))]


def with_manifest(glob: str) -> dict[str, Any]:
    raw = raw_spec()
    raw["catalog"]["manifests"] = ["ok/*.yaml", glob]
    return raw


def test_valid_spec_has_no_problems() -> None:
    assert messages(raw_spec()) == []
    validate.check(model.parse(raw_spec()))


def test_minimal_spec_has_no_problems() -> None:
    raw = raw_spec()
    del raw["catalog"], raw["triggers"], raw["build"]
    assert messages(raw) == []


def test_problems_are_spec_errors_with_fields() -> None:
    found = validate.problems(model.parse(with_manifest("../x")))
    assert len(found) == 1
    assert isinstance(found[0], errors.SpecError)
    assert found[0].field == "spec.catalog.manifests[1]"
    assert found[0].reason == "InvalidSpec"


# --- catalog manifests -------------------------------------------------------------------------


@pytest.mark.parametrize("glob", ["../x", "a/../../x", "..", "a/b/../../..", "./../x", "*/../../x"])
def test_manifest_glob_escaping_repository(glob: str) -> None:
    assert messages(with_manifest(glob)) == [
        "spec.catalog.manifests[1]: glob matches outside the repository"
    ]


def test_manifest_glob_escaping_through_double_star() -> None:
    assert messages(with_manifest("**/../outside.yaml")) == [
        "spec.catalog.manifests[1]: glob matches outside the repository"
    ]


@pytest.mark.parametrize("glob", ["/etc/passwd", "/", "envs\\a.yaml", "C:\\catalog\\x.yaml"])
def test_manifest_glob_must_be_relative_with_forward_slashes(glob: str) -> None:
    assert messages(with_manifest(glob)) == [
        "spec.catalog.manifests[1]: must be a relative path with forward slashes"
    ]


@pytest.mark.parametrize("glob", ["**/*.yaml", "./x.yaml", "a/./b/*.yml", "..a"])
def test_manifest_glob_inside_repository(glob: str) -> None:
    assert messages(with_manifest(glob)) == []


def test_each_bad_manifest_named_by_index() -> None:
    raw = raw_spec()
    raw["catalog"]["manifests"] = ["../a", "ok.yaml", "/b"]
    assert messages(raw) == [
        "spec.catalog.manifests[0]: glob matches outside the repository",
        "spec.catalog.manifests[2]: must be a relative path with forward slashes",
    ]


# --- dockerfile and source path ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../Dockerfile", "must stay inside the source folder (no ..)"),
        ("a/../../Dockerfile", "must stay inside the source folder (no ..)"),
        ("..", "must stay inside the source folder (no ..)"),
        ("/Dockerfile", "must be a relative path with forward slashes"),
        ("docker\\Dockerfile", "must be a relative path with forward slashes"),
        (".", "must name a file"),
        ("docker/..", "must stay inside the source folder (no ..)"),
    ],
)
def test_dockerfile_rules(path: str, problem: str) -> None:
    raw = raw_spec()
    raw["dockerfile"] = path
    assert messages(raw) == [f"spec.dockerfile: {problem}"]


@pytest.mark.parametrize("path", ["Dockerfile", "docker/Dockerfile.prod"])
def test_dockerfile_inside_context(path: str) -> None:
    raw = raw_spec()
    raw["dockerfile"] = path
    assert messages(raw) == []


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../runner", "must stay inside the source folder (no ..)"),
        ("images/../../x", "must stay inside the source folder (no ..)"),
        ("/images", "must be a relative path with forward slashes"),
    ],
)
def test_source_git_path_rules(path: str, problem: str) -> None:
    raw = raw_spec()
    raw["source"]["git"]["path"] = path
    assert messages(raw) == [f"spec.source.git.path: {problem}"]


@pytest.mark.parametrize("path", [".", "images/runner", "./images"])
def test_source_git_path_may_be_the_root(path: str) -> None:
    raw = raw_spec()
    raw["source"]["git"]["path"] = path
    assert messages(raw) == []


def test_inline_source_needs_default_dockerfile() -> None:
    raw = raw_spec()
    raw["source"] = {"inline": {"dockerfile": "FROM alpine", "scripts": {}}}
    assert messages(raw) == []
    raw["dockerfile"] = "other/Dockerfile"
    assert messages(raw) == [
        "spec.dockerfile: must be Dockerfile (or unset) with spec.source.inline"
    ]


# --- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:s3cr3tPW@github.com/org/repo.git",
        "http://alice:s3cr3tPW@git.example:8080/repo",
        "ssh://git:s3cr3tPW@example.com/org/repo",
        "https://x-access-token:s3cr3tPW@github.com/o/r",
    ],
)
@pytest.mark.parametrize(
    ("location", "field", "secret_field"),
    [
        ("source", "spec.source.git.url", "spec.source.git.secretRef"),
        ("catalog", "spec.catalog.git.url", "spec.catalog.git.secretRef"),
    ],
)
def test_url_with_password_rejected_without_echoing_it(
    url: str, location: str, field: str, secret_field: str
) -> None:
    raw = raw_spec()
    raw[location]["git"]["url"] = url
    found = messages(raw)
    assert found == [f"{field}: {SECRET_HINT} {secret_field}"]
    with pytest.raises(errors.SpecError) as caught:
        validate.check(model.parse(raw))
    for text in (caught.value.message, str(caught.value), caught.value.problem):
        assert "s3cr3tPW" not in text
        assert "alice" not in text


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/repo.git",
        "ssh://git@github.com/org/repo.git",
        "git@github.com:org/repo.git",
        "https://github.com/org/repo:with-colon@v1",
    ],
)
def test_url_without_password_accepted(url: str) -> None:
    raw = raw_spec()
    raw["source"]["git"]["url"] = url
    raw["catalog"]["git"]["url"] = url
    raw["source"]["git"]["secretRef"] = raw["catalog"]["git"]["secretRef"] = {"name": "git-ssh"}
    assert messages(raw) == []


# -- hostile input (issue 11): each is Stalled naming the field, never retried in a loop -------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc/passwd", "unsupported git URL"),
        ("ext::sh -c touch% /tmp/pwned", "unsupported git URL"),
        ("fd::17", "unsupported git URL"),
        ("-u@git.example.com:x.git", "must not start with '-'"),
        ("ssh://-oProxyCommand=touch%20x/x.git", "must not start with '-'"),
        ("-oProxyCommand=x@host:x", "must not start with '-'"),
        ("https://git.example.com:99999/x.git", "port must be a number from 1 to 65535"),
        ("https://git.example.com:0/x.git", "port must be a number from 1 to 65535"),
        ("https://git.example.com/x\x00.git", "found U+0000"),
        ("https://git.example.com/x\x1b[2J.git", "found U+001B"),
    ],
)
def test_hostile_git_urls_are_refused_naming_the_field(url: str, problem: str) -> None:
    for side in ("source", "catalog"):
        raw = raw_spec()
        raw[side]["git"]["url"] = url
        raw[side]["git"]["secretRef"] = {"name": "git"}
        found = messages(raw)
        assert len(found) == 1, found
        assert found[0].startswith(f"spec.{side}.git.url: "), found
        assert problem in found[0]


def test_ssh_url_needs_a_secret() -> None:
    raw = raw_spec()
    raw["source"]["git"]["url"] = "git@github.com:org/repo.git"
    assert messages(raw) == [
        "spec.source.git.secretRef: is required for an SSH URL (a Secret with identity and"
        " known_hosts)"
    ]


@pytest.mark.parametrize(
    "ref", ["--upload-pack=touch /tmp/x", "-x", "main..x", "refs/../x", "main\n", "a b", "x~1"]
)
def test_source_ref_must_be_a_git_ref(ref: str) -> None:
    raw = raw_spec()
    raw["source"]["git"]["ref"] = ref
    found = messages(raw)
    assert len(found) == 1, found
    assert found[0].startswith("spec.source.git.ref: "), found


@pytest.mark.parametrize("ref", ["main", "v1.2.3", "refs/tags/v1", "0" * 40, "HEAD", "release/1.x"])
def test_source_ref_accepted(ref: str) -> None:
    raw = raw_spec()
    raw["source"]["git"]["ref"] = ref
    assert messages(raw) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("source", "git", "ref"), "main\u202e"),
        (("source", "git", "path"), "runners/\u200bbicep"),
        (("source", "git", "url"), "https://github.com/org/\ufeffx.git"),
        (("catalog", "git", "branch"), "main\u200b"),
        (("catalog", "pushBranch"), "review\u202e"),
        (("catalog", "manifests"), ["Environments/\x00*.yaml"]),
        (("catalog", "manifests"), ["Environments/\u202e*.yaml"]),
        (("catalog", "commit", "authorName"), "bot\nAuthor: evil"),
        (("catalog", "commit", "authorEmail"), "b\x7ft@example.com"),
        (("catalog", "commit", "messageTemplate"), "Use {image}\x00"),
        (("catalog", "field"), "run\u200bner"),
        (("catalog", "adopt"), ["core:\x1b*"]),
        (("dockerfile",), "Docker\u202efile"),
        (("target",), "final\x00"),
    ],
)
def test_control_and_invisible_characters_are_refused(path: tuple[str, ...], value: Any) -> None:
    raw = raw_spec()
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    found = messages(raw)
    assert found, value
    assert any("control or invisible formatting characters" in m for m in found), found
    field = "spec." + ".".join(path)
    assert all(m.startswith(field) for m in found), found


def test_a_commit_message_may_span_lines_in_any_script() -> None:
    raw = raw_spec()
    hebrew = "\u05e9\u05dc\u05d5\u05dd"
    raw["catalog"]["commit"] = {"messageTemplate": f"Läuft: {{image}}\n\n\t{hebrew} ({{reason}})"}
    assert messages(raw) == []


def test_nul_in_a_build_argument_is_refused() -> None:
    raw = raw_spec()
    raw["buildArgs"] = {"A": "x\x00y", "B": "multi\nline \u202e ok"}
    assert messages(raw) == [
        "spec.buildArgs.A: must not contain NUL (it cannot be passed to a build)"
    ]


@pytest.mark.parametrize("registry", ["contoso.io:99999", "contoso.io:0"])
def test_registry_port_must_be_in_range(registry: str) -> None:
    raw = raw_spec()
    raw["image"]["registry"] = registry
    assert messages(raw) == ["spec.image.registry: the port must be a number from 1 to 65535"]


def test_a_quantity_beyond_int64_is_refused() -> None:
    raw = raw_spec()
    raw["build"]["resources"]["limits"]["memory"] = "1e999999999"
    assert messages(raw) == ["spec.build.resources.limits[memory]: is too large (got 1e999999999)"]


# --- tag template --------------------------------------------------------------------------------


def with_tag(tag: str) -> dict[str, Any]:
    raw = raw_spec()
    raw["image"]["tag"] = tag
    return raw


@pytest.mark.parametrize(
    "tag",
    [
        "{shortRevision}-{shortBuildKey}",
        "v1-{timestamp}",
        "{revision}",
        "{buildKey}{revision}{shortBuildKey}{shortRevision}",  # exactly 128
        "build_{timestamp}.{shortRevision}",
    ],
)
def test_tag_template_valid(tag: str) -> None:
    assert messages(with_tag(tag)) == []


@pytest.mark.parametrize(
    ("tag", "unknown"),
    [("{branch}-{shortRevision}", "branch"), ("{sha}", "sha"), ("v{0}", "0"), ("{}", "")],
)
def test_tag_template_unknown_placeholder(tag: str, unknown: str) -> None:
    assert messages(with_tag(tag)) == [
        f"spec.image.tag: unknown placeholder {{{unknown}}} {TAG_KNOWN}"
    ]


def test_tag_template_names_first_unknown_alphabetically() -> None:
    assert messages(with_tag("{zeta}-{alpha}")) == [
        f"spec.image.tag: unknown placeholder {{alpha}} {TAG_KNOWN}"
    ]


@pytest.mark.parametrize(
    ("tag", "length"),
    [
        ("{buildKey}{revision}{shortBuildKey}{shortRevision}x", 129),
        ("{revision}-{buildKey}-{revision}", 146),
        ("{buildKey}-{buildKey}", 129),
    ],
)
def test_tag_template_too_long(tag: str, length: int) -> None:
    assert messages(with_tag(tag)) == [
        f"spec.image.tag: can expand to {length} characters; a tag has at most 128"
    ]


@pytest.mark.parametrize("tag", ["latest", "v1.2.3"])
def test_tag_template_without_placeholder(tag: str) -> None:
    found = messages(with_tag(tag))
    assert len(found) == 1
    assert found[0].startswith("spec.image.tag: must contain a placeholder")
    assert "a fixed tag would be overwritten" in found[0]


@pytest.mark.parametrize("tag", [".{revision}", "-{revision}", "a/{revision}", "{revision}:x"])
def test_tag_template_must_render_to_valid_tag(tag: str) -> None:
    assert messages(with_tag(tag)) == ["spec.image.tag: does not render to a valid tag"]


@pytest.mark.parametrize(
    "tag",
    [
        "{revision",
        "v}{revision}",
        # Found by tests/unit/properties/test_templates.py: a format spec or conversion that a
        # string refuses raised ValueError out of the validation (a generic error, retried).
        "{revision:d}",
        "{timestamp:%Y}",
        "{shortRevision!z}",
        "{revision:{shortRevision}}",
    ],
)
def test_tag_template_malformed(tag: str) -> None:
    found = messages(with_tag(tag))
    assert len(found) == 1
    assert found[0].startswith("spec.image.tag: is not a valid template: ")


@pytest.mark.parametrize("tag", ["v{shortRevision:.0}", "{revision:.0}{timestamp:.0}1"])
def test_tag_template_whose_placeholders_render_to_nothing_is_a_fixed_tag(tag: str) -> None:
    """Found while writing tests/unit/properties/test_templates.py: a placeholder cut to
    nothing (`.0`) counted as one, and every build got the same tag."""
    found = messages(with_tag(tag))
    assert len(found) == 1
    assert found[0].startswith("spec.image.tag: must contain a placeholder")


def test_commit_template_with_a_bad_conversion_is_refused() -> None:
    """Found by tests/unit/properties/test_templates.py: `{image!z}` passed the validation and
    raised ValueError when the catalog commit was written."""
    assert messages(with_commit_template("Use {image!z}")) == [
        "spec.catalog.commit.messageTemplate: is not a valid template: "
        "Unknown conversion specifier z"
    ]


# --- commit message template ---------------------------------------------------------------------


def with_commit_template(template: str) -> dict[str, Any]:
    raw = raw_spec()
    raw["catalog"]["commit"] = {"messageTemplate": template}
    return raw


@pytest.mark.parametrize(
    "template",
    [
        "Use runner image {image} ({reason})",
        "{name}/{namespace}: {image}@{digest} in {files}",
        "Update the runner image",
    ],
)
def test_commit_template_valid(template: str) -> None:
    assert messages(with_commit_template(template)) == []


def test_commit_template_unknown_placeholder() -> None:
    assert messages(with_commit_template("Pin {image} at {sha}")) == [
        f"spec.catalog.commit.messageTemplate: unknown placeholder {{sha}} {COMMIT_KNOWN}"
    ]


def test_commit_template_malformed() -> None:
    found = messages(with_commit_template("Pin {image"))
    assert len(found) == 1
    assert found[0].startswith("spec.catalog.commit.messageTemplate: is not a valid template: ")


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["baseImage", "source"])
@pytest.mark.parametrize("interval", ["59s", "30s", "500ms", "0s", "0.9m"])
def test_trigger_interval_too_short(name: str, interval: str) -> None:
    raw = raw_spec()
    raw["triggers"][name]["interval"] = interval
    assert messages(raw) == [
        f"spec.triggers.{name}.interval: must be at least 60s (got {interval})"
    ]


@pytest.mark.parametrize("name", ["baseImage", "source"])
@pytest.mark.parametrize("interval", ["daily", "60", "1d", ""])
def test_trigger_interval_not_a_duration(name: str, interval: str) -> None:
    raw = raw_spec()
    raw["triggers"][name]["interval"] = interval
    found = messages(raw)
    assert len(found) == 1
    assert found[0].startswith(f"spec.triggers.{name}.interval: not a duration: ")


@pytest.mark.parametrize("interval", ["1m", "60s", "168h"])
def test_trigger_interval_long_enough(interval: str) -> None:
    raw = raw_spec()
    raw["triggers"]["source"]["interval"] = interval
    assert messages(raw) == []


def test_trigger_without_interval_not_checked() -> None:
    raw = raw_spec()
    raw["triggers"] = {"baseImage": {"enabled": False}, "source": {}}
    assert messages(raw) == []


@pytest.mark.parametrize(
    ("timeout", "problem"),
    [
        ("59s", "must be at least 60s (got 59s)"),
        ("0s", "must be at least 60s (got 0s)"),
        ("24h1s", "must be at most 24h (got 24h1s)"),
        ("25h", "must be at most 24h (got 25h)"),
        ("48h", "must be at most 24h (got 48h)"),
    ],
)
def test_build_timeout_bounds(timeout: str, problem: str) -> None:
    raw = raw_spec()
    raw["build"]["timeout"] = timeout
    assert messages(raw) == [f"spec.build.timeout: {problem}"]


@pytest.mark.parametrize("timeout", ["1m", "60s", "30m", "24h", "23h59m59s"])
def test_build_timeout_within_bounds(timeout: str) -> None:
    raw = raw_spec()
    raw["build"]["timeout"] = timeout
    assert messages(raw) == []


def test_build_timeout_not_a_duration() -> None:
    raw = raw_spec()
    raw["build"]["timeout"] = "forever"
    found = messages(raw)
    assert len(found) == 1
    assert found[0].startswith("spec.build.timeout: not a duration: 'forever'")


# --- build pod: resources and placement ----------------------------------------------------------


def with_build(**build: Any) -> dict[str, Any]:
    raw = raw_spec()
    raw["build"] = {"timeout": "30m", **build}
    return raw


@pytest.mark.parametrize(
    "resources",
    [
        {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
        {"requests": {"cpu": "1"}, "limits": {"cpu": "1000m"}},
        {"requests": {"memory": "1G"}, "limits": {"memory": "1Gi"}},
        {"requests": {"memory": "1e9"}, "limits": {"memory": "1e9"}},
        {"requests": {"cpu": ".5", "ephemeral-storage": "10Gi"}},
        {"limits": {"hugepages-2Mi": "64Mi", "example.com/gpu": "1"}},
        {"requests": {"cpu": "2"}},
        {},
    ],
)
def test_valid_resources(resources: dict[str, Any]) -> None:
    assert messages(with_build(resources=resources)) == []


@pytest.mark.parametrize(
    ("resources", "field", "problem"),
    [
        (
            {"requests": {"memory": "8Gi"}, "limits": {"memory": "4Gi"}},
            "requests[memory]",
            "must be at most its limit, 4Gi (got 8Gi)",
        ),
        (
            {"requests": {"cpu": "1500m"}, "limits": {"cpu": "1"}},
            "requests[cpu]",
            "must be at most its limit, 1 (got 1500m)",
        ),
        (
            {"limits": {"memory": "4GB"}},
            "limits[memory]",
            "'4GB' is not a quantity (e.g. 500m, 2, 1.5Gi, 512Mi)",
        ),
        ({"requests": {"cpu": "-1"}}, "requests[cpu]", "must not be negative (got -1)"),
        ({"requests": {"cpu": "1e1.5"}}, "requests[cpu]", "'1e1.5' is not a quantity"),
        ({"limits": {"mem": "1Gi"}}, "limits[mem]", "unknown resource 'mem': use cpu, memory,"),
        ({"limits": {"Memory": "1Gi"}}, "limits[Memory]", "unknown resource 'Memory'"),
        ({"limits": {"Example.com/gpu": "1"}}, "limits[Example.com/gpu]", "'Example.com/gpu':"),
    ],
)
def test_invalid_resources(resources: dict[str, Any], field: str, problem: str) -> None:
    (found,) = messages(with_build(resources=resources))
    assert found.startswith(f"spec.build.resources.{field}: {problem}")


def test_quantities_compare_by_value() -> None:
    assert validate.parse_quantity("1Gi") == 1024**3
    assert validate.parse_quantity("1G") == 1000**3
    assert validate.parse_quantity("500m") == validate.parse_quantity("0.5")
    assert validate.parse_quantity("1e3") == validate.parse_quantity("1k")
    assert validate.parse_quantity("12Mi") == 12 * 1024**2
    assert validate.parse_quantity("2") == 2
    assert validate.parse_quantity("1.5.1") is None
    assert validate.parse_quantity("") is None


@pytest.mark.parametrize(
    "selector",
    [
        {"kubernetes.io/arch": "amd64"},
        {"node.kubernetes.io/instance-type": "Standard_D4s_v5", "pool": ""},
        {"a" * 63: "b" * 63},
    ],
)
def test_valid_node_selector(selector: dict[str, str]) -> None:
    assert messages(with_build(nodeSelector=selector)) == []


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("pool", "gpu builds", "'gpu builds' is not a valid label value"),
        ("pool", "x" * 64, "is not a valid label value"),
        ("pool", "-gpu", "'-gpu' is not a valid label value"),
        ("build pool", "gpu", "'build pool' is not a valid key"),
        ("a" * 64, "gpu", "is not a valid key"),
        ("Example.com/pool", "gpu", "'Example.com/pool': the prefix before '/' must be"),
        ("/pool", "gpu", "'/pool': the prefix before '/' must be a DNS-1123 subdomain"),
    ],
)
def test_invalid_node_selector(key: str, value: str, problem: str) -> None:
    (found,) = messages(with_build(nodeSelector={key: value}))
    assert found.startswith(f"spec.build.nodeSelector[{key}]: ")
    assert problem in found


@pytest.mark.parametrize(
    "toleration",
    [
        {"key": "dedicated", "operator": "Equal", "value": "builds", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "builds"},
        {"key": "dedicated", "operator": "Equal"},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"operator": "Exists"},
        {"operator": "Exists", "effect": "PreferNoSchedule"},
    ],
)
def test_valid_toleration(toleration: dict[str, Any]) -> None:
    assert messages(with_build(tolerations=[toleration])) == []


@pytest.mark.parametrize(
    ("toleration", "problem"),
    [
        (
            {"value": "builds"},
            "operator: must be Exists when key is empty (which tolerates every taint)",
        ),
        ({"operator": "Equal"}, "operator: must be Exists when key is empty"),
        (
            {"key": "dedicated", "operator": "Exists", "value": "builds"},
            "value: must be empty when operator is Exists",
        ),
        ({"key": "dedicated", "value": "gpu builds"}, "value: 'gpu builds' is not a valid label"),
        ({"key": "dedi cated"}, "key: 'dedi cated' is not a valid key"),
        (
            {"key": "spot", "effect": "NoSchedule", "tolerationSeconds": 60},
            "tolerationSeconds: is allowed only with effect NoExecute",
        ),
        (
            {"key": "spot", "tolerationSeconds": 60},
            "tolerationSeconds: is allowed only with effect NoExecute",
        ),
    ],
)
def test_invalid_toleration_names_the_item_and_field(
    toleration: dict[str, Any], problem: str
) -> None:
    ok = {"operator": "Exists"}
    (found,) = messages(with_build(tolerations=[ok, toleration]))
    assert found.startswith(f"spec.build.tolerations[1].{problem}")


def test_every_bad_toleration_field_is_reported() -> None:
    bad = {"value": "a b", "tolerationSeconds": 1}
    assert [m.split(":")[0] for m in messages(with_build(tolerations=[bad]))] == [
        "spec.build.tolerations[0].operator",
        "spec.build.tolerations[0].value",
        "spec.build.tolerations[0].tolerationSeconds",
    ]


@pytest.mark.parametrize("name", ["default", "runner-builds", "builds.team-a", "a" * 253])
def test_valid_service_account_name(name: str) -> None:
    assert messages(with_build(serviceAccountName=name)) == []


@pytest.mark.parametrize(
    "name", ["", "Builds", "runner_builds", "-builds", "builds-", "a..b", "a" * 254, "team/sa"]
)
def test_invalid_service_account_name(name: str) -> None:
    assert messages(with_build(serviceAccountName=name)) == [
        f"spec.build.serviceAccountName: {name!r} is not a DNS-1123 subdomain (lower-case"
        " letters, digits, '-' and '.', at most 253 characters)"
    ]


@pytest.mark.parametrize("backend", ["BuildKitDaemon", "Docker"])
def test_placement_is_checked_whatever_the_backend(backend: str) -> None:
    found = messages(with_build(backend=backend, nodeSelector={"pool": "a b"}))
    assert [m.split(":")[0] for m in found] == ["spec.build.nodeSelector[pool]"]


# --- branches ------------------------------------------------------------------------------------


@pytest.mark.parametrize("branch", ["main", "", None])
def test_push_branch_equal_to_branch(branch: str | None) -> None:
    raw = raw_spec()
    if branch is None:
        del raw["catalog"]["git"]["branch"]  # default: main
    else:
        raw["catalog"]["git"]["branch"] = "main"
    raw["catalog"]["pushBranch"] = "main"
    assert messages(raw) == [
        "spec.catalog.pushBranch: must differ from spec.catalog.git.branch (or be empty)"
    ]


@pytest.mark.parametrize("push_branch", ["", "runner-updates"])
def test_push_branch_empty_or_different(push_branch: str) -> None:
    raw = raw_spec()
    raw["catalog"]["pushBranch"] = push_branch
    assert messages(raw) == []


INVALID_BRANCHES = [
    "a..b",
    "a b",
    "a\tb",
    "a~1",
    "a^",
    "a:b",
    "a?",
    "a*",
    "a[b",
    "a\\b",
    "a@{b",
    "a//b",
    "a/.b",
    "a.lock",
    "a.lock/b",
    ".a",
    "/a",
    "-a",
    "a/",
    "a.",
    "@",
]


@pytest.mark.parametrize("branch", INVALID_BRANCHES)
def test_invalid_catalog_branch(branch: str) -> None:
    raw = raw_spec()
    raw["catalog"]["git"]["branch"] = branch
    assert messages(raw) == [f"spec.catalog.git.branch: {branch!r} is not a valid git branch name"]


@pytest.mark.parametrize("branch", INVALID_BRANCHES)
def test_invalid_push_branch(branch: str) -> None:
    raw = raw_spec()
    raw["catalog"]["pushBranch"] = branch
    assert messages(raw) == [f"spec.catalog.pushBranch: {branch!r} is not a valid git branch name"]


def test_branch_with_del_character_is_invalid() -> None:
    raw = raw_spec()
    raw["catalog"]["pushBranch"] = "runner\x7fupdates"
    assert messages(raw) == [
        "spec.catalog.pushBranch: 'runner\\x7fupdates' is not a valid git branch name"
    ]


@pytest.mark.parametrize(
    "branch", ["main", "feature/x", "release-1.2", "a@b", "user/feature_x", "v1.0/rc.1", "a-"]
)
def test_valid_branches(branch: str) -> None:
    raw = raw_spec()
    raw["catalog"]["git"]["branch"] = branch
    raw["catalog"]["pushBranch"] = f"bot/{branch}"
    assert messages(raw) == []


# --- check ---------------------------------------------------------------------------------------


def test_check_raises_the_single_problem() -> None:
    spec = model.parse(with_manifest("../x"))
    with pytest.raises(errors.SpecError) as caught:
        validate.check(spec)
    assert caught.value.field == "spec.catalog.manifests[1]"
    assert caught.value.message == "spec.catalog.manifests[1]: glob matches outside the repository"


def test_check_lists_every_problem_in_one_message() -> None:
    raw = raw_spec()
    raw["dockerfile"] = "../Dockerfile"
    raw["source"]["git"]["url"] = "https://bob:hunter2@github.com/org/runner.git"
    raw["image"]["tag"] = "latest"
    raw["catalog"]["manifests"] = ["ok.yaml", "a/../../x"]
    raw["catalog"]["commit"] = {"messageTemplate": "{sha}"}
    raw["catalog"]["pushBranch"] = "main"
    raw["triggers"]["source"]["interval"] = "10s"
    raw["build"]["timeout"] = "2d"
    raw["build"]["tolerations"] = [{"value": "builds"}]
    spec = model.parse(raw)
    expected = [problem.message for problem in validate.problems(spec)]
    assert [message.split(":")[0] for message in expected] == [
        "spec.dockerfile",
        "spec.source.git.url",
        "spec.image.tag",
        "spec.catalog.manifests[1]",
        "spec.catalog.commit.messageTemplate",
        "spec.catalog.pushBranch",
        "spec.triggers.source.interval",
        "spec.build.timeout",
        "spec.build.tolerations[0].operator",
    ]
    with pytest.raises(errors.SpecError) as caught:
        validate.check(spec)
    assert caught.value.message == "; ".join(expected)
    assert caught.value.field == "spec.dockerfile"
    assert caught.value.reason == "InvalidSpec"
    assert "hunter2" not in caught.value.message


# --- catalog format, field paths, interval ---------------------------------------------------


@pytest.mark.parametrize(
    ("catalog", "expected"),
    [
        ({"format": "YAML", "field": "spec.template.spec.containers[name=app].image"}, []),
        ({"format": "YAML", "field": "image.tag", "repositoryField": "image.repository"}, []),
        ({"format": "YAML", "field": "images[name=app].newTag"}, []),
        (
            {"format": "YAML", "field": "image..tag"},
            ["spec.catalog.field: 'image..tag': '' is not a key with optional [N] or [key=value]"],
        ),
        (
            {"format": "YAML", "field": "images[name].newTag"},
            ["spec.catalog.field: 'images[name].newTag': [name] is neither [N] nor [key=value]"],
        ),
        (
            {"field": "image.tag"},
            ["spec.catalog.field: must be a top-level key with format EnvironmentDefinition"],
        ),
        (
            {"repositoryField": "image.repository"},
            ["spec.catalog.repositoryField: needs format YAML"],
        ),
        (
            {"field": "templatePath"},
            [
                "spec.catalog.field: 'templatePath' is an environment definition's own key, not an"
                " image field (refused: name, version, summary, description, templatePath,"
                " parameters)"
            ],
        ),
        ({"format": "YAML", "field": "name"}, []),
        ({"interval": "30m"}, []),
        ({"interval": "5s"}, ["spec.catalog.interval: must be at least 10s (got 5s)"]),
    ],
)
def test_catalog_field_paths_and_interval(catalog: dict[str, str], expected: list[str]) -> None:
    raw = raw_spec()
    raw["catalog"].update(catalog)
    assert messages(raw) == expected
