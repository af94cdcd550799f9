"""An in-process AWS on moto's ThreadedMotoServer, for ``iamwarden demo`` and the tests.

boto3 reaches it over real HTTP through ``AWS_ENDPOINT_URL``. Helpers here age credentials and add
the credential report's ``<root_account>`` row, which moto does not produce (see DESIGN.md's notes).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_ACCOUNT = "123456789012"
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Never let a developer's real profile or instance role leak into the sandbox.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}

_CSV_DATE = "%Y-%m-%dT%H:%M:%S+00:00"


@dataclass
class RootAccount:
    """What the credential report's <root_account> row says. Centrally managed root: all False."""

    password_enabled: bool = True
    password_last_used: datetime | None = None
    mfa_active: bool = True
    access_key_1_active: bool = False
    access_key_2_active: bool = False
    access_key_1_last_used: datetime | None = None
    cert_1_active: bool = False
    cert_2_active: bool = False
    created: datetime = field(default_factory=lambda: datetime(2019, 1, 1, tzinfo=UTC))

    def csv_row(self, account_id: str) -> str:
        def when(moment: datetime | None, default: str) -> str:
            return moment.strftime(_CSV_DATE) if moment else default

        def flag(value: bool) -> str:
            return "true" if value else "false"

        created = self.created.strftime(_CSV_DATE)
        cols = [
            "<root_account>",
            f"arn:aws:iam::{account_id}:root",
            created,
            "not_supported",  # password_enabled for root is always not_supported in real reports
            when(self.password_last_used, "no_information") if self.password_enabled else "no_information",
            "not_supported",
            "not_supported",
            flag(self.mfa_active),
            flag(self.access_key_1_active),
            created if self.access_key_1_active else "N/A",
            when(self.access_key_1_last_used, "N/A"),
            "N/A",
            "N/A",
            flag(self.access_key_2_active),
            created if self.access_key_2_active else "N/A",
            "N/A",
            "N/A",
            "N/A",
            flag(self.cert_1_active),
            created if self.cert_1_active else "N/A",
            flag(self.cert_2_active),
            created if self.cert_2_active else "N/A",
        ]
        return ",".join(cols) + "\n"


class MotoSandbox:
    """A moto server on 127.0.0.1 (port 0). ``env()`` gives the variables that point boto3 at it."""

    def __init__(self, *, load_managed_policies: bool = True):
        self.load_managed_policies = load_managed_policies
        self._server: Any = None
        self.endpoint_url = ""
        self._roots: dict[str, RootAccount] = {}
        self._saved_env: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def start(self) -> MotoSandbox:
        # Managed policies exist only when this is set before the IAM backend is first created.
        if self.load_managed_policies:
            os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._patch_credential_report()
        _speed_up_managed_policies()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        from moto.iam.models import IAMBackend

        sandboxes = getattr(IAMBackend, "_iamwarden_sandboxes", [])
        if self in sandboxes:
            sandboxes.remove(self)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    def __enter__(self) -> MotoSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        return {**DUMMY_ENV, "AWS_ENDPOINT_URL": self.endpoint_url}

    def apply_env(self) -> None:
        """Point this process's boto3 at the sandbox until ``stop()`` (the demo; tests use monkeypatch)."""
        for key, value in self.env().items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def reset(self) -> None:
        req = urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST", data=b"")  # noqa: S310
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
            resp.read()
        with self._lock:
            self._roots.clear()

    # -- reaching into the backend (in-process only) -----------------------------------------------

    def iam_backend(self, account_id: str = DEFAULT_ACCOUNT) -> Any:
        from moto.iam.models import iam_backends

        return iam_backends[account_id]["global"]

    def set_root(self, root: RootAccount | None, account_id: str = DEFAULT_ACCOUNT) -> None:
        """Make the credential report carry this <root_account> row (None removes it)."""
        with self._lock:
            if root is None:
                self._roots.pop(account_id, None)
            else:
                self._roots[account_id] = root

    def _patch_credential_report(self) -> None:
        from moto.iam.models import IAMBackend

        if getattr(IAMBackend, "_iamwarden_patched", False):
            IAMBackend._iamwarden_sandboxes.append(self)  # type: ignore[attr-defined]
            return
        original = IAMBackend.get_credential_report
        IAMBackend._iamwarden_sandboxes = [self]  # type: ignore[attr-defined]

        def get_credential_report(backend: Any) -> str:
            report = original(backend)
            for sandbox in IAMBackend._iamwarden_sandboxes:  # type: ignore[attr-defined]
                root = sandbox._roots.get(backend.account_id)
                if root is not None:
                    header, _, rows = report.partition("\n")
                    return header + "\n" + root.csv_row(backend.account_id) + rows
            return report

        IAMBackend.get_credential_report = get_credential_report  # type: ignore[method-assign]
        IAMBackend._iamwarden_patched = True  # type: ignore[attr-defined]

    def age_user(self, name: str, *, created: datetime, account_id: str = DEFAULT_ACCOUNT) -> None:
        self.iam_backend(account_id).users[name].create_date = _whole(created)

    def set_password_last_used(
        self, name: str, when: datetime | None, *, account_id: str = DEFAULT_ACCOUNT
    ) -> None:
        self.iam_backend(account_id).users[name].password_last_used = _whole(when) if when else None

    def age_access_key(
        self,
        user: str,
        *,
        created: datetime | None = None,
        last_used: datetime | None = None,
        service: str = "iam",
        region: str = "us-east-1",
        index: int = 0,
        account_id: str = DEFAULT_ACCOUNT,
    ) -> str:
        """Set a key's creation and last-used time; returns its access key id."""
        from moto.iam.models import AccessKeyLastUsed

        key = self.iam_backend(account_id).users[user].access_keys[index]
        if created is not None:
            key.create_date = _whole(created)
        if last_used is not None:
            key.last_used = AccessKeyLastUsed(timestamp=_whole(last_used), service=service, region=region)
        return key.access_key_id

    def set_role_last_used(
        self, role_name: str, when: datetime, *, region: str = "us-east-1", account_id: str = DEFAULT_ACCOUNT
    ) -> None:
        backend = self.iam_backend(account_id)
        role = next(r for r in backend.roles.values() if r.name == role_name)
        role.last_used = _whole(when)
        role.last_used_region = region

    def age_role(self, role_name: str, *, created: datetime, account_id: str = DEFAULT_ACCOUNT) -> None:
        backend = self.iam_backend(account_id)
        role = next(r for r in backend.roles.values() if r.name == role_name)
        role.create_date = _whole(created)


@functools.cache
def _managed_policy_data() -> tuple[tuple[str, dict[str, Any]], ...]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    parsed = json.loads(aws_managed_policies_data)
    return tuple(
        (
            name,
            {
                "default_version_id": d.get("DefaultVersionId"),
                "path": d.get("Path"),
                "document": json.dumps(d.get("Document")),
                "create_date": datetime.fromisoformat(d["CreateDate"]),
                "update_date": datetime.fromisoformat(d["UpdateDate"]),
            },
        )
        for name, d in parsed.items()
    )


def _speed_up_managed_policies() -> None:
    """moto re-parses its 7 MB of AWS managed policies for every IAM backend it creates, which
    made each reset cost most of a second. Parse once; build the same objects as moto does."""
    from moto.iam import models

    if getattr(models.IAMBackend, "_iamwarden_fast_policies", False):
        return

    def _init_aws_policies(backend: Any) -> list[Any]:
        if not models.load_iam_aws_managed_policies():
            return []
        return [
            models.AWSManagedPolicy(name, account_id=backend.account_id, region=backend.region_name, **kwargs)
            for name, kwargs in _managed_policy_data()
        ]

    models.IAMBackend._init_aws_policies = _init_aws_policies  # type: ignore[method-assign]
    models.IAMBackend._iamwarden_fast_policies = True  # type: ignore[attr-defined]


def _whole(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.replace(microsecond=0)
