"""Log setup: plain or JSON lines, each line of a reconcile naming its RunnerImage and build key.

The reconcile binds the object it works on (`bind`) and the build step the key it builds
(`bind_build_key`) in context variables; `ContextFilter`, on the root handler, copies them onto
every record, whatever logger emitted it (the operator's, kopf's, httpx's), and tasks started
inside a reconcile (in-process builds) inherit them. Records of kopf's per-object loggers carry
the object already (`k8s_ref`); outside any reconcile that is used instead.

Plain lines read `[time] logger [LEVEL] [namespace/name build=<key>] message`; JSON lines are
objects with `timestamp`, `severity`, `logger`, `message`, `kind` (RunnerImage, or Job for kopf's
lines about the build Jobs it watches), `namespace`, `name`, `buildKey` and,
on an exception, `exception`. Only these fields are written: no `extra` of a record, which keeps
whatever a library attaches to its records out of the logs.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

SHORT_KEY = 12
"""How many characters of a build key plain lines show (JSON lines carry all of it)."""


@dataclasses.dataclass(frozen=True)
class Scope:
    namespace: str
    name: str
    build_key: str = ""
    kind: str = "RunnerImage"
    """The kind of the object (kopf also logs about the build Jobs it watches)."""


_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("ade_log_scope", default=None)


@contextlib.contextmanager
def bind(*, namespace: str, name: str) -> Iterator[None]:
    """Every line logged inside the block (in this task, and in tasks it starts) names the
    RunnerImage."""
    token = _scope.set(Scope(namespace, name))
    try:
        yield
    finally:
        _scope.reset(token)


def bind_build_key(key: str) -> None:
    """The rest of the current reconcile (until `bind` ends) also names this build key."""
    scope = _scope.get()
    if scope is not None:
        _scope.set(dataclasses.replace(scope, build_key=key))


def current() -> Scope | None:
    return _scope.get()


class ContextFilter(logging.Filter):
    """Sets `ade_kind`, `ade_namespace`, `ade_name` and `ade_build_key` on every record (empty
    when none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = _scope.get()
        if scope is None:
            ref = getattr(record, "k8s_ref", None)  # kopf's per-object loggers
            if isinstance(ref, dict) and ref.get("name"):
                kind = str(ref.get("kind") or "")
                scope = Scope(str(ref.get("namespace") or ""), str(ref["name"]), kind=kind)
        record.ade_kind = scope.kind if scope else ""
        record.ade_namespace = scope.namespace if scope else ""
        record.ade_name = scope.name if scope else ""
        record.ade_build_key = scope.build_key if scope else ""
        return True


PLAIN_FORMAT = "[%(asctime)s] %(name)-20.20s [%(levelname)-8.8s] %(message)s"


class PlainFormatter(logging.Formatter):
    """kopf's full text format, with `[namespace/name build=<short key>]` before the message."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        name = getattr(record, "ade_name", "")
        if not name:
            return super().formatMessage(record)
        namespace = getattr(record, "ade_namespace", "")
        key = getattr(record, "ade_build_key", "")
        prefix = f"{namespace}/{name}" if namespace else name
        if key:
            prefix += f" build={key[:SHORT_KEY]}"
        saved = record.message
        record.message = f"[{prefix}] {saved}"
        try:
            return super().formatMessage(record)
        finally:
            record.message = saved


def _severity(level: int) -> str:
    if level <= logging.DEBUG:
        return "debug"
    if level <= logging.INFO:
        return "info"
    if level <= logging.WARNING:
        return "warn"
    if level <= logging.ERROR:
        return "error"
    return "fatal"


class JsonFormatter(logging.Formatter):
    """One JSON object a line (the `severity` words are kopf's)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "severity": _severity(record.levelno),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field, attribute in (
            ("kind", "ade_kind"),
            ("namespace", "ade_namespace"),
            ("name", "ade_name"),
            ("buildKey", "ade_build_key"),
        ):
            value = getattr(record, attribute, "")
            if value:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


_HANDLER_NAME = "ade-runner-operator"


def configure(*, json_lines: bool, level: str) -> logging.Handler:
    """Log to stderr in the chosen format at `level`, replacing the root logger's handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if json_lines else PlainFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # Python's warnings become log lines too, in the same format
    # asyncio's debug chatter is not the operator's (kopf quiets it the same way).
    quiet = logging.getLogger("asyncio")
    quiet.propagate = level == "DEBUG"
    return handler
