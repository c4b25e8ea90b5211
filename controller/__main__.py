"""Entry point: `python -m controller` (or `ade-runner-operator`) runs the operator.

It loads the configuration from the environment, sets up logging, starts the metrics endpoint,
registers the handlers and runs kopf against the in-cluster configuration or the current
kubeconfig. `catalog plan` is a local tool: it imports the catalog engine only, not the operator
(kopf, the Kubernetes and Azure clients), so that it answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller import config as config_


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ade-runner-operator",
        description="Builds, verifies and publishes runner images for Azure Deployment "
        "Environments.",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the operator (the default); configured by ADE_* variables")
    commands.add_parser(
        "lint", help="lint a runner Dockerfile as the operator does (lint --help)", add_help=False
    )
    commands.add_parser(
        "verify",
        help="check a pushed image against ADE's runner rules (verify --help)",
        add_help=False,
    )
    commands.add_parser(
        "catalog",
        help="catalog plan: preview the runner edit on a local checkout (catalog plan --help)",
        add_help=False,
    )
    return parser


def run(config: config_.Config) -> None:
    """Run the operator until it is stopped (SIGINT/SIGTERM)."""
    import asyncio  # the operator's imports: not paid by `catalog plan`
    import logging
    import secrets

    import kopf
    import prometheus_client

    from controller import config as config_
    from controller import handlers
    from controller.observe import logs, metrics

    logs.configure(json_lines=config.log_format is config_.LogFormat.JSON, level=config.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # azure-core logs every request's headers at INFO: only its warnings, unless debugging.
    azure_level = logging.DEBUG if config.log_level == "DEBUG" else logging.WARNING
    logging.getLogger("azure").setLevel(azure_level)
    if config.metrics_port:
        prometheus_client.start_http_server(config.metrics_port, registry=metrics.REGISTRY)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, config)
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=config.clusterwide,
            namespaces=list(config.namespaces),
            standalone=not config.peering,
            # Peers with equal priorities all pause; a random one per process lets exactly one
            # replica work and another take over when it is gone.
            priority=secrets.randbelow(2**31 - 2) + 1 if config.peering else 0,
            peering_name=config.peering or None,
            liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz"
            if config.health_port
            else None,
        )
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["lint"], ["verify"]):  # the runner author's tools: no configuration either
        from controller.conformance import cli as conformance_cli

        command = conformance_cli.lint_main if argv[0] == "lint" else conformance_cli.verify_main
        return command(argv[1:])
    if argv[:1] == ["catalog"]:  # `catalog plan ...`: a local preview; no configuration needed
        from controller.catalog import cli as catalog_cli

        return catalog_cli.main(argv[1:])
    from controller import config as config_

    args = _parser().parse_args(argv)
    try:
        config = config_.from_env(os.environ)
    except config_.ConfigError as error:
        print(f"ade-runner-operator: configuration error: {error}", file=sys.stderr)
        return 2
    if args.command in (None, "run"):
        run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
