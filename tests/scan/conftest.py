"""Fixtures of the scan tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def sts_checks_roles(monkeypatch):
    """moto's AssumeRole succeeds for roles that do not exist; AWS answers AccessDenied. Teach it."""
    from moto.iam.models import iam_backends
    from moto.sts.exceptions import STSClientError
    from moto.sts.models import STSBackend

    original = STSBackend.assume_role

    def assume_role(self, region_name, role_session_name, role_arn, policy, duration, external_id):
        account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[-1]
        if not any(r.name == name for r in iam_backends[account]["global"].roles.values()):
            raise STSClientError(
                "AccessDenied", f"Not authorized to perform sts:AssumeRole on resource {role_arn}"
            )
        return original(self, region_name, role_session_name, role_arn, policy, duration, external_id)

    monkeypatch.setattr(STSBackend, "assume_role", assume_role)
