"""Challenges, credentials and docker config payloads in controller.registry.auth."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from controller.registry import auth

SECRET = "s3cr3t:with:colons@and,commas"
NO_COLON = "no-colon-" + SECRET.replace(":", "")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
            [
                (
                    "bearer",
                    {"realm": "https://auth.docker.io/token", "service": "registry.docker.io"},
                )
            ],
        ),
        (
            'Bearer realm="https://contoso.azurecr.io/oauth2/token",service="contoso.azurecr.io",'
            'scope="repository:ade/bicep:pull,push"',
            [
                (
                    "bearer",
                    {
                        "realm": "https://contoso.azurecr.io/oauth2/token",
                        "service": "contoso.azurecr.io",
                        "scope": "repository:ade/bicep:pull,push",
                    },
                )
            ],
        ),
        ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"})]),
        ("Basic realm=simple", [("basic", {"realm": "simple"})]),
        ('BEARER Realm="r" , Service = "s"', [("bearer", {"realm": "r", "service": "s"})]),
        (
            'Bearer realm="a,b", error="insufficient_scope", Basic realm="c, d"',
            [
                ("bearer", {"realm": "a,b", "error": "insufficient_scope"}),
                ("basic", {"realm": "c, d"}),
            ],
        ),
        ('Basic, Bearer realm="q\\"x"', [("basic", {}), ("bearer", {"realm": 'q"x'})]),
        ("Basic dXNlcjpwYXNz", [("basic", {"token68": "dXNlcjpwYXNz"})]),
        (
            "Negotiate abc==, Basic realm=x",
            [("negotiate", {"token68": "abc=="}), ("basic", {"realm": "x"})],
        ),
        ('Bearer realm="unterminated', [("bearer", {"realm": "unterminated"})]),
        ("", []),
        (" , ", []),
    ],
)
def test_parse_challenges(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    got = auth.parse_challenges(header)
    assert [(c.scheme, dict(c.params)) for c in got] == expected


def test_challenge_accessors() -> None:
    (challenge,) = auth.parse_challenges(
        'Bearer realm="r",service="s",scope="repository:a:pull repository:b:pull,push"'
    )
    assert (challenge.realm, challenge.service) == ("r", "s")
    assert challenge.scopes == ("repository:a:pull", "repository:b:pull,push")
    assert challenge.error is None
    assert challenge.get("REALM") == "r"


def test_credentials_never_show_secrets() -> None:
    basic = auth.Credentials(username="robot", password=SECRET)
    token = auth.Credentials(username="00000000-0000", identity_token=SECRET)
    for credentials in (basic, token):
        for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
            assert SECRET not in text
            assert b64(f"robot:{SECRET}") not in text
            assert "<redacted>" in text
    assert "robot" in repr(basic)
    assert basic.basic == "Basic " + b64(f"robot:{SECRET}")


def config(**auths: Any) -> str:
    return json.dumps({"auths": auths})


def test_docker_config_hosts_and_urls() -> None:
    store = auth.parse_docker_config(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": b64(f"hub:{SECRET}")},
                    "contoso.azurecr.io": {"username": "u", "password": "p"},
                    "http://127.0.0.1:5000/v2/": {"auth": b64("local:pw")},
                    "HTTPS://Fabrikam.AzureCR.io": {
                        "username": "00000000-0000-0000-0000-000000000000",
                        "identitytoken": "refresh",
                    },
                    "helper.example.com": {},
                }
            }
        )
    )
    assert sorted(store) == [
        "127.0.0.1:5000",
        "contoso.azurecr.io",
        "docker.io",
        "fabrikam.azurecr.io",
    ]
    assert store.lookup("docker.io") == auth.Credentials(username="hub", password=SECRET)
    assert store.lookup("index.docker.io") == store.lookup("docker.io")
    assert store.lookup("127.0.0.1:5000") == auth.Credentials(username="local", password="pw")
    fabrikam = store.lookup("fabrikam.azurecr.io")
    assert fabrikam is not None
    assert fabrikam.identity_token == "refresh"
    assert store.lookup("helper.example.com") is None
    assert store.lookup("unknown.example.com") is None
    assert store["CONTOSO.azurecr.io"].username == "u"
    assert SECRET not in repr(store)
    assert SECRET not in str(store)


def test_docker_config_auth_wins_and_may_lack_padding() -> None:
    unpadded = b64("a:bc").rstrip("=")
    store = auth.parse_docker_config(
        config(**{"h.io": {"auth": unpadded, "username": "other", "password": "other"}})
    )
    assert store["h.io"] == auth.Credentials(username="a", password="bc")


def test_docker_config_bare_host_wins_over_url_form() -> None:
    store = auth.parse_docker_config(
        config(
            **{
                "h.io": {"username": "bare", "password": "1"},
                "https://h.io/v2/": {"username": "url", "password": "2"},
            }
        )
    )
    assert store["h.io"].username == "bare"


def test_legacy_dockercfg_and_mappings() -> None:
    legacy = auth.parse_docker_config(json.dumps({"h.io": {"auth": b64("u:p")}}))
    assert legacy["h.io"].password == "p"
    mapping = auth.parse_docker_config({"auths": {"h.io": {"username": "u", "password": "p"}}})
    assert mapping["h.io"].username == "u"
    raw = auth.parse_docker_config(config(**{"h.io": {"username": "u", "password": "p"}}).encode())
    assert raw["h.io"].username == "u"


@pytest.mark.parametrize(
    "payload",
    [
        f"not json {SECRET}",
        json.dumps([SECRET]),
        json.dumps({"auths": [SECRET]}),
        config(**{"h.io": SECRET}),
        config(**{"h.io": {"auth": f"!!{SECRET}!!"}}),
        config(**{"h.io": {"auth": b64(NO_COLON)}}),
        config(**{"h.io": {"username": "u", "password": 42}}),
        config(**{"h.io": {"auth": 42}}),
        # Found by tests/unit/properties/test_docker_config.py:
        config(**{"h.io": {"auth": f"{SECRET}\u0080"}}),  # non-ASCII: ValueError escaped
        config(**{f"https://user:{SECRET}@h.io/": None}),  # the key's password was quoted
        config(**{f"https://user:{SECRET} x@h.io/": None}),  # also holding a space
        config(**{f"user:{SECRET}@h.io": {"auth": 42}}),  # also without a scheme
        config(**{f"https://user:{SECRET}/@h.io/": 1}),  # a "/" in it (long profile)
        "[" * 100_000 + "]" * 100_000,  # RecursionError escaped
    ],
)
def test_docker_config_errors_quote_no_secret(payload: str) -> None:
    with pytest.raises(auth.DockerConfigError) as caught:
        auth.parse_docker_config(payload)
    assert SECRET not in str(caught.value)
    assert NO_COLON not in str(caught.value)
    assert b64(NO_COLON) not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ or caught.value.__context__ is None


def test_normalize_host() -> None:
    assert auth.normalize_host("https://index.docker.io/v1/") == "docker.io"
    assert auth.normalize_host("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    assert auth.normalize_host(" Contoso.azurecr.io ") == "contoso.azurecr.io"
    assert auth.normalize_host("https://user:pass@h.io/v1/") == "h.io"
    assert auth.normalize_host("https://user:pa/ss@h.io/v1/") == "h.io"
