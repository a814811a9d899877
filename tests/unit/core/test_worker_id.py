"""The worker id fits its lease name (VARCHAR(64) with "worker:") with any hostname."""

from __future__ import annotations

import os

import pytest

from core.jobs.recovery import worker_lease
from core.service import MAX_WORKER_ID, new_worker_id

FQDN = "ip-172-31-20-51.eu-west-2.compute.internal.example-corp-long.net"


@pytest.mark.parametrize(
    "hostname", ["vm", "a" * 63, "b" * 64, FQDN, FQDN * 4, "", "host:with:colons"]
)
def test_a_worker_id_fits_its_lease_name_with_any_hostname(hostname: str) -> None:
    worker = new_worker_id(hostname)
    assert len(worker) <= MAX_WORKER_ID
    assert len(worker_lease(worker)) <= 64
    host, pid, suffix = worker.split(":")
    assert pid == str(os.getpid()) and len(suffix) == 8
    assert host


def test_a_long_hostname_keeps_its_readable_start_and_stays_distinct() -> None:
    a = new_worker_id(FQDN).split(":")[0]
    b = new_worker_id(FQDN.replace("eu-west-2", "eu-west-3")).split(":")[0]
    assert a.startswith("ip-172-31-20-51.eu-west-2")
    assert a != b
    assert new_worker_id("vm").startswith("vm:")
