"""AMIs per region: `resolve:ssm:` references resolved in the launch's region, and each
AMI's root device name (which a root volume mapping must use), each asked once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from navarch_plan.errors import InvalidRequestError
from navarch_plan.providers.aws.faults import gap_hint, translating
from navarch_plan.providers.aws.launch import SSM_PREFIX

__all__ = ["RegionImages"]


class RegionImages:
    """`ec2` and `ssm` make a region's client. Answers are cached for the provider's life
    (an SSM "latest" parameter moves on about monthly; a node's AMI is fixed at launch).
    Threads may race to fill the same key: both get the same answer, so no lock."""

    def __init__(self, provider: str, ec2: Callable[[str], Any],
                 ssm: Callable[[str], Any]) -> None:
        self.provider, self._ec2, self._ssm = provider, ec2, ssm
        self._amis: dict[tuple[str, str], str] = {}
        self._root_devices: dict[tuple[str, str], str] = {}

    def ami(self, image: str, region: str) -> str:
        """The AMI id `image` (an id, or `resolve:ssm:NAME`) means in `region`."""
        if not image.startswith(SSM_PREFIX):
            return image
        key = (region, image)
        if key not in self._amis:
            with translating(self.provider, region, f"resolving image_id {image}"):
                reply = self._ssm(region).get_parameter(Name=image[len(SSM_PREFIX):])
            self._amis[key] = reply["Parameter"]["Value"]
        return self._amis[key]

    def root_device(self, ami: str, region: str) -> str:
        """The AMI's RootDeviceName (DescribeImages), as SkyPilot reads it."""
        key = (region, ami)
        if key not in self._root_devices:
            with translating(self.provider, region, f"describing image {ami}"):
                images = self._ec2(region).describe_images(ImageIds=[ami])["Images"]
            if not images or not images[0].get("RootDeviceName"):
                raise InvalidRequestError(
                    f"image {ami} not found in {region}; "
                    + gap_hint("image_id", self.provider, region),
                    provider=self.provider, region=region, code="InvalidAMIID.NotFound")
            self._root_devices[key] = images[0]["RootDeviceName"]
        return self._root_devices[key]
