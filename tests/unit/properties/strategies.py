"""Hypothesis strategies shared by the property tests: image reference parts as registries,
Dockerfiles and catalogs write them."""

from __future__ import annotations

from hypothesis import strategies as st

LOWER = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
HEX = "0123456789abcdef"

host_labels = st.text(LOWER + DIGITS, min_size=1, max_size=8).filter(lambda s: s[0] != "-")
hosts = st.one_of(
    st.sampled_from(
        [
            "contoso.azurecr.io",
            "mcr.microsoft.com",
            "localhost",
            "127.0.0.1:5000",
            "localhost:5000",
            "registry.example:443",
            "docker.io",
            "index.docker.io",
            "[::1]:5000",
            "Registry.Example",
        ]
    ),
    st.lists(host_labels, min_size=2, max_size=3).map(".".join),
    st.tuples(host_labels, st.integers(1, 65535)).map(lambda p: f"{p[0]}:{p[1]}"),
)
components = st.one_of(
    st.sampled_from(["ade", "runner", "core", "deployment-environments", "runners", "my_app"]),
    st.lists(
        st.text(LOWER + DIGITS, min_size=1, max_size=6),
        min_size=1,
        max_size=3,
    ).flatmap(
        lambda words: st.lists(
            st.sampled_from([".", "_", "__", "-", "--"]),
            min_size=len(words) - 1,
            max_size=len(words) - 1,
        ).map(lambda seps: "".join(w + s for w, s in zip(words, [*seps, ""], strict=True)))
    ),
)
repositories = st.lists(components, min_size=1, max_size=4).map("/".join)
tags = st.one_of(
    st.sampled_from(["latest", "4.0.0", "4.0.0-preview", "2.7.0", "v1", "_x", "A.b-C_d"]),
    st.text(LOWER + LOWER.upper() + DIGITS + "_", min_size=1, max_size=1).flatmap(
        lambda first: st.text(LOWER + LOWER.upper() + DIGITS + "_.-", max_size=20).map(
            lambda rest: first + rest
        )
    ),
)
digests = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda b: f"sha256:{b.hex()}"),
    st.binary(min_size=64, max_size=64).map(lambda b: f"sha512:{b.hex()}"),
)


@st.composite
def references(draw: st.DrawFn, *, tag: bool | None = None, digest: bool | None = None) -> str:
    """A valid reference as a user writes it: host optional, tag and digest as asked (None:
    either)."""
    host = draw(st.none() | hosts)
    repository = draw(repositories)
    if host is None and "/" in repository and any(c in repository.split("/")[0] for c in ".:"):
        host = "contoso.azurecr.io"  # else its first component would be read as the registry
    text = repository if host is None else f"{host}/{repository}"
    if tag if tag is not None else draw(st.booleans()):
        text += f":{draw(tags)}"
    if digest if digest is not None else draw(st.booleans()):
        text += f"@{draw(digests)}"
    return text
