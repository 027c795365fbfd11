"""What one Compute Engine insert carries: the provider's launch settings under a pool's
overrides, and the instance body built from them (disks, network, service account,
metadata with SSH keys and user_data).

Where the cloud leaves a choice to us, this follows dstack's GCP backend (pd-balanced
boot disk, the `default` network, a service account given by email with the
cloud-platform scope, `user-data` metadata) and SkyPilot's (a fixed login user the guest
agent creates from `ssh-keys`); docs/clouds/gcp.md has the table.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from google.cloud import compute_v1

from navarch_plan.model import ProvisionRequest
from navarch_plan.providers.gcp import catalog

__all__ = ["DEFAULT_IMAGE", "DEFAULT_SSH_USER", "LaunchSettings", "instance_body",
           "run_once_script"]

# A public Deep Learning VM image family with CUDA 12.4 and the NVIDIA driver installer;
# overridable per provider or pool (`image:`) with any image or family path.
DEFAULT_IMAGE = ("projects/deeplearning-platform-release/global/images/family/"
                 "common-cu124-debian-11-py310")
# The account GCE's guest agent creates for the `ssh-keys` lines (SkyPilot: gcpuser,
# dstack: ubuntu); any name works on any image with the guest agent.
DEFAULT_SSH_USER = "navarch"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_GUARD = "/var/lib/navarch/user-data.ran"


@dataclass(frozen=True)
class LaunchSettings:
    """The gcp options that shape an instance. `subnetwork`: one value, or by region."""

    image: str = DEFAULT_IMAGE
    disk_gb: int = 200
    disk_type: str = ""  # "": by machine type (catalog.boot_disk_type)
    network: str = "default"
    subnetwork: str | Mapping[str, str] = ""
    service_account: str = ""
    ssh_user: str = DEFAULT_SSH_USER

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> LaunchSettings:
        return cls().over(options)

    def over(self, launch: Mapping[str, Any]) -> LaunchSettings:
        """These settings under a pool's overrides (unknown keys are not ours: ignored)."""
        names = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in launch.items() if k in names})

    def subnetwork_in(self, region: str) -> str:
        value = self.subnetwork
        return value.get(region, "") if isinstance(value, Mapping) else value


def _path(value: str, kind: str, scope: str) -> str:
    """A bare name becomes a path in its scope (`global/networks/NAME`); paths and URLs
    pass as given."""
    return value if "/" in value else f"{scope}/{kind}/{value}"


def run_once_script(user_data: str) -> str:
    """A startup-script that runs a `#!` user_data once per instance. GCE runs
    startup-scripts at every boot, so a guard file marks the first run (made before the
    script runs: one that reboots is not run again). Images with cloud-init run the
    script from `user-data` themselves, once, so there this one steps aside."""
    encoded = base64.b64encode(user_data.encode()).decode()
    return "\n".join([
        "#!/bin/sh",
        "# navarch: run user_data once (cloud-init images run it from user-data)",
        "command -v cloud-init >/dev/null 2>&1 && exit 0",
        f"[ -e {_GUARD} ] && exit 0",
        f"mkdir -p {_GUARD.rsplit('/', 1)[0]} && touch {_GUARD}",
        "script=$(mktemp)",
        f"echo '{encoded}' | base64 -d > \"$script\"",
        'chmod 700 "$script"',
        'exec "$script"',
        "",
    ])


def _metadata(req: ProvisionRequest, user: str) -> compute_v1.Metadata:
    # The DLVM images install the NVIDIA driver at first boot when asked to.
    items = [compute_v1.Items(key="install-nvidia-driver", value="True")]
    if req.user_data:
        items.append(compute_v1.Items(key="user-data", value=req.user_data))
        if req.user_data.startswith("#!"):
            items.append(compute_v1.Items(key="startup-script",
                                          value=run_once_script(req.user_data)))
    keys = [f"{user}:{req.ssh_public_keys[k]}" for k in req.ssh_key_names]
    if keys:
        items.append(compute_v1.Items(key="ssh-keys", value="\n".join(keys)))
    return compute_v1.Metadata(items=items)


def _network(settings: LaunchSettings, region: str) -> compute_v1.NetworkInterface:
    subnetwork = settings.subnetwork_in(region)
    return compute_v1.NetworkInterface(
        network=_path(settings.network, "networks", "global"),
        subnetwork=_path(subnetwork, "subnetworks", f"regions/{region}") if subnetwork
        else None,
        access_configs=[compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")])


def _scheduling(req: ProvisionRequest) -> compute_v1.Scheduling:
    """GPUs cannot live-migrate: the API refuses MIGRATE for GPU VMs. A spot VM is
    deleted when GCE takes it back (navarch's next plan recreates it) and never
    restarted by GCE on its own."""
    if req.purchase == "spot":
        return compute_v1.Scheduling(provisioning_model="SPOT",
                                     instance_termination_action="DELETE",
                                     on_host_maintenance="TERMINATE", automatic_restart=False)
    return compute_v1.Scheduling(on_host_maintenance="TERMINATE", automatic_restart=True)


#: ReservationAffinity's key for "the reservation with this name".
RESERVATION_NAME_KEY = "compute.googleapis.com/reservation-name"


def _reservation_affinity(req: ProvisionRequest) -> compute_v1.ReservationAffinity | None:
    """Only a reserved launch targets a reservation; others keep GCE's default (consume
    any matching automatic reservation), as before reservations existed."""
    if not req.reservation:
        return None
    return compute_v1.ReservationAffinity(consume_reservation_type="SPECIFIC_RESERVATION",
                                          key=RESERVATION_NAME_KEY, values=[req.reservation])


def instance_body(req: ProvisionRequest, zone: str, settings: LaunchSettings,
                  machine: str, accel: str, count: int) -> compute_v1.Instance:
    disk_type = settings.disk_type or catalog.boot_disk_type(machine)
    disk = compute_v1.AttachedDiskInitializeParams(
        source_image=settings.image, disk_size_gb=settings.disk_gb,
        disk_type=f"zones/{zone}/diskTypes/{disk_type}")
    accounts = [compute_v1.ServiceAccount(email=settings.service_account,
                                          scopes=[CLOUD_PLATFORM])
                ] if settings.service_account else []
    return compute_v1.Instance(
        name=req.name,
        machine_type=f"zones/{zone}/machineTypes/{machine}",
        labels=catalog.sanitize_labels(req.labels),
        scheduling=_scheduling(req),
        reservation_affinity=_reservation_affinity(req),
        disks=[compute_v1.AttachedDisk(boot=True, auto_delete=True, initialize_params=disk)],
        network_interfaces=[_network(settings, catalog.region_of(zone))],
        service_accounts=accounts,
        metadata=_metadata(req, settings.ssh_user),
        guest_accelerators=[compute_v1.AcceleratorConfig(
            accelerator_type=f"zones/{zone}/acceleratorTypes/{accel}",
            accelerator_count=count)] if accel else [],
    )
