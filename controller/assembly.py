"""Builds the operator's `Services` from its configuration: clients, backends, limits, folders."""

from __future__ import annotations

import pathlib

from controller import config as config_
from controller import kube
from controller.api import spec as model
from controller.azure import cache as azure_cache
from controller.azure import clients as azure_clients
from controller.azure import settings as azure_settings
from controller.builds import daemon_backend, docker_backend, inprocess, job, job_backend, retries
from controller.catalog import repository
from controller.reconcile import images, limits, services, wake


def services_from_config(config: config_.Config) -> services.Services:
    cluster = kube.Kube(kube.api_client())
    # A build that ends wakes its object's reconcile at once (the timer is the net): an
    # in-process build from its task, a build Job from the handlers' watch of Jobs.
    waker = wake.Waker(cluster)
    tasks = inprocess.Tasks(on_finished=waker.build_finished)
    return services.Services(
        kube=cluster,
        backends={
            model.BuildBackend.JOB: job_backend.JobBackend(
                kube=cluster,
                settings=job.JobSettings(
                    image=config.buildkit_image or job.BUILDKIT_IMAGE,
                    host_network=config.build_host_network,
                ),
                pending_timeout=config.build_pending_timeout,
            ),
            model.BuildBackend.BUILDKIT_DAEMON: daemon_backend.DaemonBackend(
                settings=daemon_backend.DaemonSettings(
                    address=config.buildkit_addr,
                    tls_dir=pathlib.Path(config.buildkit_tls_dir)
                    if config.buildkit_tls_dir
                    else None,
                ),
                tasks=tasks,
            ),
            model.BuildBackend.DOCKER: docker_backend.DockerBackend(
                settings=docker_backend.DockerSettings(), tasks=tasks
            ),
        },
        slots=limits.BuildSlots(limit=config.max_concurrent_builds),
        build_retries=retries.Policy(retries=config.build_retries, delay=config.build_retry_delay),
        reconcile_slots=limits.ReconcileSlots(limit=config.max_concurrent_reconciles),
        workdir=pathlib.Path(config.work_dir),
        registry=images.Registry(
            insecure_hosts=frozenset(config.insecure_registries), timeout=config.registry_timeout
        ),
        tasks=tasks,
        waker=waker,
        catalog=repository.CatalogWriter(
            cache=repository.CloneCache(pathlib.Path(config.work_dir) / "catalogs"),
            window=config.catalog_batch_window,
            max_window=config.catalog_batch_max_window,
            eager=True,
        ),
        azure=azure_clients.AzureClients(azure_settings_from_config(config)),
        access_cache=azure_cache.AccessCache(interval=config.azure_check_interval),
        reconcile_timeout=config.reconcile_timeout,
    )


def azure_settings_from_config(config: config_.Config) -> azure_settings.AzureSettings:
    return azure_settings.AzureSettings(
        resource_manager=config.azure_resource_manager,
        authority_host=config.azure_authority_host,
        credential_scope=config.azure_credential_scope or None,
        ca_bundle=config.azure_ca_bundle or None,
    )
