"""Properties of docker config payloads (`controller.registry.auth.parse_docker_config`, the
`.dockerconfigjson` of a push Secret) and of the credentials read from them.

- Credentials written in any of the shapes `docker login`, `kubectl create secret
  docker-registry` and hand-written Secrets use (`auth` with or without padding, `username` /
  `password`, `identitytoken`; keys as hosts or URLs, with extra fields beside) are found again
  for the host, in any case, by its Docker Hub alias too; a bare host key wins over a URL key.
- Any payload at all (bytes, text, JSON of any shape, nested thousands deep) gives a store or a
  `DockerConfigError`, never another exception.
- No secret (password, token, `auth`) is ever in an error message or a `repr`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.registry import auth, reference
from tests.unit.properties import strategies

MARK = "s3cr3t"
"""Every generated secret holds this, so that an error or a repr quoting one is found."""

users = st.text(strategies.LOWER + strategies.DIGITS + "_.-@", min_size=1, max_size=12)
secrets_ = st.text(min_size=1, max_size=16).map(lambda s: f"{MARK}{s}")


@st.composite
def entries(draw: st.DrawFn) -> tuple[dict[str, Any], auth.Credentials]:
    """One `auths` entry in a random shape and the credentials it means."""
    style = draw(st.sampled_from(["auth", "auth-padded", "fields", "token", "auth-and-fields"]))
    username, password = draw(users), draw(secrets_)
    entry: dict[str, Any] = {}
    if style.startswith("auth"):
        encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
        entry["auth"] = encoded if style == "auth-padded" else encoded.rstrip("=")
        if style == "auth-and-fields":  # auth wins, as in Docker
            entry.update(username="ignored", password=f"{MARK}ignored")
        expected = auth.Credentials(username=username, password=password)
    elif style == "fields":
        entry.update(username=username, password=password)
        expected = auth.Credentials(username=username, password=password)
    else:
        token = draw(secrets_)
        entry.update(username="00000000-0000-0000-0000-000000000000", identitytoken=token)
        expected = auth.Credentials(
            username="00000000-0000-0000-0000-000000000000", identity_token=token
        )
    if draw(st.booleans()):
        entry["email"] = "someone@example.com"
    return entry, expected


def _key(host: str, form: str) -> str:
    return {
        "bare": host,
        "https": f"https://{host}",
        "v1": f"https://{host}/v1/",
        "http": f"http://{host}/",
        "upper": host.upper(),
    }[form]


forms = st.sampled_from(["bare", "https", "v1", "http", "upper"])
hosts = strategies.hosts.filter(lambda h: not h.startswith("["))


@given(
    st.dictionaries(hosts.map(auth.normalize_host), st.tuples(forms, entries()), max_size=4),
    st.sampled_from(["bytes", "text", "mapping", "legacy"]),
)
def test_credentials_are_found_for_their_host(
    written: dict[str, tuple[str, tuple[dict[str, Any], auth.Credentials]]], shape: str
) -> None:
    auths = {_key(host, form): entry for host, (form, (entry, _)) in written.items()}
    document: dict[str, Any] = (
        auths if shape == "legacy" else {"auths": auths, "credsStore": "desktop", "HttpHeaders": {}}
    )
    payload: Any = {"bytes": json.dumps(document).encode(), "text": json.dumps(document)}.get(
        shape, document
    )
    store = auth.parse_docker_config(payload)
    assert len(store) == len(written)
    for host, (_, (_, expected)) in written.items():
        assert store.lookup(host) == expected
        assert store.lookup(host.upper()) == expected
        if host == reference.DOCKER_HUB:
            assert store.lookup("index.docker.io") == expected
    assert MARK not in repr(store)
    assert all(MARK not in repr(credentials) for credentials in store.values())


@given(hosts, entries(), entries())
def test_a_bare_host_key_wins_over_a_url_key(
    host: str, bare: tuple[dict[str, Any], auth.Credentials], url: tuple[dict[str, Any], Any]
) -> None:
    store = auth.parse_docker_config({"auths": {f"https://{host}/v1/": url[0], host: bare[0]}})
    assert store.lookup(host) == bare[1]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | secrets_,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
entry_like = st.dictionaries(
    st.sampled_from(["auth", "username", "password", "identitytoken", "email", "registrytoken"]),
    json_values | secrets_ | secrets_.map(lambda s: base64.b64encode(s.encode()).decode()),
    max_size=4,
)
documents = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(["auths", "credsStore"]),
        json_values
        | st.dictionaries(
            st.one_of(hosts, secrets_.map(lambda s: f"https://user:{s}@registry.example/")),
            entry_like | json_values,
            max_size=3,
        ),
        max_size=2,
    ),
)
payloads = st.one_of(
    documents.map(json.dumps),
    documents.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=20),
    st.text(max_size=20),
    st.integers(1, 100_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 100_000).map(lambda n: '{"auths":' * n + "{}" + "}" * n),
)


@given(payloads)
def test_any_payload_gives_credentials_or_a_docker_config_error(payload: str | bytes) -> None:
    try:
        store = auth.parse_docker_config(payload)
    except auth.DockerConfigError as error:
        message = str(error)
    else:
        assert MARK not in repr(store)
        return
    assert MARK not in message, message


@given(documents)
def test_any_document_gives_credentials_or_a_docker_config_error(document: Any) -> None:
    if not isinstance(document, dict):
        with pytest.raises(auth.DockerConfigError):
            auth.parse_docker_config(json.dumps(document))
        return
    try:
        auth.parse_docker_config(document)
    except auth.DockerConfigError as error:
        assert MARK not in str(error), str(error)  # noqa: PT017 - the message is the property
