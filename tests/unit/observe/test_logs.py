"""controller.observe.logs: the reconcile's object and build key on every line, in both formats."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from controller.observe import logs

KEY = "0123456789abcdef" * 4


Capture = tuple[logging.Logger, io.StringIO, "logging.StreamHandler[io.StringIO]"]


@pytest.fixture
def capture() -> Iterator[Capture]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("tests.unit.observe.logs")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, stream, handler
    logger.removeHandler(handler)
    logger.propagate = True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_carry_the_object_and_the_build_key(capture: Capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(logs.JsonFormatter())
    logger.info("outside")
    with logs.bind(namespace="team-a", name="bicep"):
        logger.info("resolving %s", "inputs")
        logs.bind_build_key(KEY)
        logger.warning("building")
    logger.info("after")
    records = [json.loads(line) for line in lines(stream)]
    assert [r.get("namespace") for r in records] == [None, "team-a", "team-a", None]
    assert [r.get("name") for r in records] == [None, "bicep", "bicep", None]
    assert [r.get("buildKey") for r in records] == [None, None, KEY, None]
    assert records[1]["message"] == "resolving inputs"
    assert records[2]["severity"] == "warn"
    assert records[2]["logger"] == "tests.unit.observe.logs"
    assert "timestamp" in records[0]


def test_plain_lines_are_prefixed(capture: Capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(logs.PlainFormatter())
    with logs.bind(namespace="team-a", name="bicep"):
        logger.info("one")
        logs.bind_build_key(KEY)
        logger.info("two %d", 2)
    logger.info("three")
    one, two, three = lines(stream)
    assert one.endswith("[INFO    ] [team-a/bicep] one")
    assert two.endswith(f"[INFO    ] [team-a/bicep build={KEY[:12]}] two 2")
    assert three.endswith("[INFO    ] three")


def test_kopf_object_loggers_are_named_outside_a_bind(capture: Capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(logs.JsonFormatter())
    ref = {"kind": "RunnerImage", "namespace": "team-b", "name": "arm", "uid": "u"}
    logger.info("Handler succeeded.", extra={"k8s_ref": ref, "settings": object()})
    (record,) = [json.loads(line) for line in lines(stream)]
    assert (record["kind"], record["namespace"], record["name"]) == ("RunnerImage", "team-b", "arm")
    assert "settings" not in record  # extras are never written
    assert "k8s_ref" not in record


def test_kopf_lines_about_a_build_job_say_it_is_a_job(capture: Capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(logs.JsonFormatter())
    ref = {"kind": "Job", "namespace": "team-b", "name": "arm-build-0123456789ab", "uid": "u"}
    logger.debug("Handler 'on_build_job' is invoked.", extra={"k8s_ref": ref})
    (record,) = [json.loads(line) for line in lines(stream)]
    assert (record["kind"], record["name"]) == ("Job", "arm-build-0123456789ab")


def test_exceptions_are_one_json_line(capture: Capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(logs.JsonFormatter())
    with logs.bind(namespace="n", name="x"):
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            logger.exception("failed")
    (line,) = lines(stream)
    record = json.loads(line)
    assert "ValueError: bad" in record["exception"]
    assert record["name"] == "x"


async def test_tasks_started_in_a_reconcile_inherit_it(capture: Capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(logs.JsonFormatter())

    async def build() -> None:
        await asyncio.sleep(0)
        logger.info("from the build task")

    with logs.bind(namespace="n", name="x"):
        logs.bind_build_key(KEY)
        task = asyncio.create_task(build())
    await task
    (record,) = [json.loads(line) for line in lines(stream)]
    assert (record["name"], record["buildKey"]) == ("x", KEY)


def test_a_build_key_outside_a_reconcile_is_ignored() -> None:
    logs.bind_build_key(KEY)
    assert logs.current() is None


def test_configure_replaces_the_root_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        handler = logs.configure(json_lines=True, level="WARNING")
        assert root.handlers == [handler]
        assert root.level == logging.WARNING
        assert isinstance(handler.formatter, logs.JsonFormatter)
        assert any(isinstance(f, logs.ContextFilter) for f in handler.filters)
        plain = logs.configure(json_lines=False, level="DEBUG")
        assert root.handlers == [plain]
        assert isinstance(plain.formatter, logs.PlainFormatter)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
        logging.getLogger("asyncio").propagate = True
        logging.captureWarnings(False)
