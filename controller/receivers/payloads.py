"""Each host's documented event shape read into an `events.Event` (pure).

- GitHub `push` (`X-GitHub-Event`; JSON or a form's `payload` field): the ref, `after` and the
  repository's clone, SSH, git and web URLs. `ping` and every other event are verified but
  change nothing.
- Azure Repos service hook `git.push`: each of `resource.refUpdates`, with the repository's
  `remoteUrl`, `sshUrl` and `webUrl`.
- ACR webhook `push`: `request.host`, `target.repository`, `target.tag`, `target.digest`.
- Generic (this operator's form): `{id, timestamp, source: {url, ref, revision?},
  image: {reference, digest?}}`, at least one of `source` and `image`.

A body that is not the shape its type promises is `events.malformed`, naming the field.
"""

from __future__ import annotations

import datetime
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from controller.receivers import events
from controller.registry import reference

_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def read(kind: str, headers: Mapping[str, str], body: bytes) -> events.Event:
    """The event a verified delivery of `kind` carries (`headers` with lower-case names)."""
    if kind == events.GITHUB:
        return _github(headers, body)
    data = _json(body)
    if kind == events.AZURE_REPOS:
        return _azure_repos(data)
    if kind == events.ACR:
        return _acr(data)
    return _generic(data)


def _github(headers: Mapping[str, str], body: bytes) -> events.Event:
    name = headers.get("x-github-event", "").strip()
    if not name:
        raise events.malformed("the event has no X-GitHub-Event header")
    delivery = headers.get("x-github-delivery") or None
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=16)
        if not form.get("payload"):
            raise events.malformed("the form has no payload field")
        data = _json(form["payload"][0].encode())
    else:
        data = _json(body)
    if name != "push":
        return events.Event(delivery, None, ignored=f"a GitHub {name} event")
    repository = _object(data, "repository")
    urls = tuple(
        url
        for key in ("clone_url", "ssh_url", "git_url", "html_url", "url")
        if isinstance(url := repository.get(key), str) and url
    )
    if not urls:
        raise events.malformed("repository has no clone_url, ssh_url or html_url")
    after = _text(data, "after")
    deleted = data.get("deleted") is True or set(after) == {"0"}
    push = events.SourcePush(
        urls=urls,
        ref=_text(data, "ref"),
        revision=None if deleted else _commit(after, "after"),
        default_branch=_optional_text(repository, "default_branch"),
    )
    return events.Event(delivery, None, (push,))


def _azure_repos(data: Mapping[str, Any]) -> events.Event:
    delivery = _optional_text(data, "id")
    sent_at = _time(data, "createdDate", required=False)
    event_type = _text(data, "eventType")
    if event_type != "git.push":
        return events.Event(delivery, sent_at, ignored=f"an Azure Repos {event_type} event")
    resource = _object(data, "resource")
    repository = _object(resource, "repository", where="resource.")
    urls = tuple(
        url
        for key in ("remoteUrl", "sshUrl", "webUrl")
        if isinstance(url := repository.get(key), str) and url
    )
    if not urls:
        raise events.malformed("resource.repository has no remoteUrl")
    default = _optional_text(repository, "defaultBranch")
    updates = resource.get("refUpdates")
    if not isinstance(updates, list) or not updates:
        raise events.malformed("resource.refUpdates is missing or empty")
    pushes = []
    for index, update in enumerate(updates):
        if not isinstance(update, dict):
            raise events.malformed(f"resource.refUpdates[{index}] is not an object")
        new = _text(update, "newObjectId", where=f"resource.refUpdates[{index}].")
        pushes.append(
            events.SourcePush(
                urls=urls,
                ref=_text(update, "name", where=f"resource.refUpdates[{index}]."),
                revision=None if set(new) == {"0"} else _commit(new, "newObjectId"),
                default_branch=default.removeprefix("refs/heads/") if default else None,
            )
        )
    return events.Event(delivery, sent_at, tuple(pushes))


def _acr(data: Mapping[str, Any]) -> events.Event:
    delivery = _optional_text(data, "id")
    sent_at = _time(data, "timestamp", required=False)
    action = _text(data, "action")
    if action != "push":
        return events.Event(delivery, sent_at, ignored=f"an ACR {action} event")
    target = _object(data, "target")
    request = _object(data, "request")
    digest = _optional_text(target, "digest")
    push = events.ImagePush(
        registry=reference.normalize_registry(_text(request, "host", where="request.")),
        repository=_text(target, "repository", where="target."),
        tag=_optional_text(target, "tag"),
        digest=digest if digest and reference.is_digest(digest) else None,
    )
    return events.Event(delivery, sent_at, (push,))


def _generic(data: Mapping[str, Any]) -> events.Event:
    delivery = _text(data, "id")
    sent_at = _time(data, "timestamp", required=True)
    changes: list[events.Change] = []
    if "source" in data:
        source = _object(data, "source")
        revision = _optional_text(source, "revision")
        changes.append(
            events.SourcePush(
                urls=(_text(source, "url", where="source."),),
                ref=_text(source, "ref", where="source."),
                revision=None if revision is None else _commit(revision, "source.revision"),
            )
        )
    if "image" in data:
        image = _object(data, "image")
        text = _text(image, "reference", where="image.")
        try:
            parsed = reference.parse(text)
        except reference.InvalidReference as error:
            raise events.malformed(f"image.reference: {error}") from None
        digest = _optional_text(image, "digest") or parsed.digest
        if digest is not None and not reference.is_digest(digest):
            raise events.malformed("image.digest is not a digest (sha256:<64 hex>)")
        changes.append(events.ImagePush(parsed.registry, parsed.repository, parsed.tag, digest))
    if not changes:
        raise events.malformed("the event names neither a source nor an image")
    return events.Event(delivery, sent_at, tuple(changes))


def _json(body: bytes) -> Mapping[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise events.malformed("the body is not JSON") from None
    if not isinstance(data, dict):
        raise events.malformed("the body is not a JSON object")
    return data


def _object(data: Mapping[str, Any], key: str, *, where: str = "") -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise events.malformed(f"{where}{key} is missing or not an object")
    return value


def _text(data: Mapping[str, Any], key: str, *, where: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise events.malformed(f"{where}{key} is missing or not a string")
    return value.strip()


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _commit(text: str, field: str) -> str:
    if not _COMMIT.fullmatch(text.lower()):
        raise events.malformed(f"{field} is not a commit id")
    return text.lower()


def _time(data: Mapping[str, Any], key: str, *, required: bool) -> datetime.datetime | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise events.malformed(f"{key} is missing or not a time")
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise events.malformed(f"{key} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise events.malformed(f"{key} has no time zone")
    return parsed
