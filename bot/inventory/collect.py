"""One account's IAM snapshot, read in a constant number of API calls.

Peers call the API once or more per user; we read the whole account in bulk:

* ``GenerateCredentialReport`` (polled with backoff; AWS regenerates at most every 4 hours) and
  ``GetCredentialReport``: every user's password, MFA, key and certificate facts, plus the root row;
* ``GetAccountAuthorizationDetails`` through boto3's paginator, filtered to users, groups, roles and
  customer-managed policies; the AWS-managed policies are fetched only when attached (a handful
  with ``GetPolicy`` + ``GetPolicyVersion``; many through GAAD's ``AWSManagedPolicy`` filter, whose
  ~1,600 policies cost one large paginated read);
* ``GetAccountSummary``, ``GetAccountPasswordPolicy``, ``ListVirtualMFADevices``,
  ``ListServerCertificates``, SAML/OIDC providers, and Access Analyzer's analyzers and active
  findings.

Every source but GAAD is optional: AccessDenied, "not implemented" or an unreachable endpoint is
recorded in ``unknown_sources`` and the checks it feeds say "could not evaluate", never pass.

The inventory is a plain JSON-safe dict (stored as the snapshot's inventory JSON);
``bot.inventory.index`` turns it into a principal's effective policy statements for ``bot.policy``.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import date, datetime
from typing import Any

from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import CLIENT_LOCK, AwsFactory, describe_aws_error, error_code
from bot.clock import Clock
from bot.store import iso

Inventory = dict[str, Any]

GAAD_FILTER = ["User", "Role", "Group", "LocalManagedPolicy"]
AWS_POLICY_PREFIX = "arn:aws:iam::aws:policy/"
# Up to this many distinct attached AWS-managed policies are read one by one (2 calls each);
# beyond it one filtered GAAD read (a few large pages) is cheaper in calls.
MAX_SINGLE_AWS_POLICIES = 6
PAGE = {"PageSize": 1000}  # the largest page IAM's list calls allow: fewer round trips
OPTIONAL_SERVICES = frozenset({"accessanalyzer"})
OPTIONAL_RETRIES = BotoConfig(retries={"mode": "adaptive", "max_attempts": 3})
REPORT_POLL_DELAYS = (0.5, 1, 2, 4, 8, 8, 8, 8, 8, 8)  # seconds; ~55 s in all before giving up

# Credential-report values that mean "no date".
NO_VALUE = frozenset({"", "N/A", "n/a", "not_supported", "no_information"})


# CLIENT_LOCK (bot.aws): clients are made one at a time, then used freely.


def _in_daemon_thread(read: Callable[..., Any], *args: Any) -> Future:
    """Run ``read`` in a daemon thread: a read stalled past the scan's deadline never keeps the
    process from exiting (a ThreadPoolExecutor's threads are joined at exit)."""
    future: Future = Future()
    future.set_running_or_notify_cancel()

    def run() -> None:
        try:
            future.set_result(read(*args))
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)

    threading.Thread(target=run, name="collect", daemon=True).start()
    return future


class CollectError(RuntimeError):
    """The account could not be read at all (GAAD failed). The message is safe to show."""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"not JSON-safe: {type(value).__name__}")


def _json_safe(value: Any) -> Any:
    """``value`` as plain JSON types (timestamps as ISO 8601 UTC strings, bytes decoded). A round
    trip through the C JSON codec: walking the dict in Python cost ~17 ms per 50-user account, the
    round trip ~3 ms. The inventory holds only the parts of responses (``page["Roles"]``, never a
    whole response), so botocore's ``ResponseMetadata`` never reaches it."""
    return json.loads(json.dumps(value, default=_json_default))


def parse_credential_report(content: bytes | str) -> list[dict[str, str]]:
    """Rows of the credential report CSV, keyed by its header names (root row included)."""
    text = content.decode("utf-8") if isinstance(content, bytes) else content
    return [dict(row) for row in csv.DictReader(io.StringIO(text))]


def report_date(value: str | None) -> datetime | None:
    """A credential-report timestamp, or None for N/A, not_supported, no_information and blanks."""
    if value is None or value.strip() in NO_VALUE:
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


class _Collector:
    def __init__(self, aws: AwsFactory, clock: Clock, sleep: Callable[[float], None]):
        self.aws = aws
        self.clock = clock
        self.sleep = sleep
        self.unknown: list[dict[str, str]] = []
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            with CLIENT_LOCK:
                if service not in self._clients:
                    self._clients[service] = self._make_client(service)
        return self._clients[service]

    def _make_client(self, service: str) -> Any:
        if service not in OPTIONAL_SERVICES:
            return self.aws.client(service)
        # An optional source must not stall the scan: fewer retries, then "unknown".
        return self.aws.client(service, config=OPTIONAL_RETRIES)

    def optional(self, source: str, read: Callable[[], Any], default: Any = None) -> Any:
        """Run one optional read; on any AWS error record the source as unknown and return default."""
        try:
            return read()
        except (ClientError, BotoCoreError) as exc:
            self.unknown.append({"source": source, "reason": describe_aws_error(exc, source)})
            return default

    def paginate(self, service: str, operation: str, key: str, **params: Any) -> list[Any]:
        out: list[Any] = []
        for page in self.client(service).get_paginator(operation).paginate(**params):
            out.extend(page.get(key) or [])
        return out

    # -- sources -------------------------------------------------------------------------------

    def credential_report(self) -> list[dict[str, str]]:
        iam = self.client("iam")
        for delay in (*REPORT_POLL_DELAYS, None):
            state = iam.generate_credential_report().get("State")
            if state == "COMPLETE":
                break
            if delay is None:
                raise ClientError(
                    {"Error": {"Code": "ReportInProgress", "Message": "report not ready in time"}},
                    "GenerateCredentialReport",
                )
            self.sleep(delay)
        return parse_credential_report(iam.get_credential_report()["Content"])

    def authorization_details(self) -> dict[str, list[Any]]:
        merged: dict[str, list[Any]] = {
            "UserDetailList": [],
            "GroupDetailList": [],
            "RoleDetailList": [],
            "Policies": [],
        }
        paginator = self.client("iam").get_paginator("get_account_authorization_details")
        for page in paginator.paginate(Filter=GAAD_FILTER, PaginationConfig=PAGE):
            for key, items in merged.items():
                items.extend(page.get(key) or [])
        return merged

    def aws_managed_policies(self, arns: set[str]) -> list[dict[str, Any]]:
        """GAAD-shaped entries (default version only) for the attached AWS-managed policies.

        A few: ``ListPolicies(Scope=AWS, OnlyAttached)`` names their default versions in one call,
        then one ``GetPolicyVersion`` each. Many: one GAAD read filtered to AWS-managed policies.
        """
        if not arns:
            return []
        iam = self.client("iam")
        if len(arns) > MAX_SINGLE_AWS_POLICIES:
            found = []
            for page in iam.get_paginator("get_account_authorization_details").paginate(
                Filter=["AWSManagedPolicy"], PaginationConfig=PAGE
            ):
                found.extend(p for p in page.get("Policies") or [] if p.get("Arn") in arns)
            return [_default_version_only(p) for p in found]
        listed = {
            p["Arn"]: p
            for p in self.paginate(
                "iam", "list_policies", "Policies", Scope="AWS", OnlyAttached=True, PaginationConfig=PAGE
            )
            if p.get("Arn") in arns
        }
        out = []
        for arn in sorted(arns):
            policy = listed.get(arn)
            if policy is None:  # e.g. used only as a permissions boundary, which is not an attachment
                policy = self.optional(
                    f"iam:GetPolicy {arn}", lambda a=arn: iam.get_policy(PolicyArn=a)["Policy"]
                )
                if policy is None:
                    continue
            version = self.optional(
                f"iam:GetPolicyVersion {arn}",
                lambda p=policy: iam.get_policy_version(PolicyArn=p["Arn"], VersionId=p["DefaultVersionId"])[
                    "PolicyVersion"
                ],
            )
            if version is None:
                continue
            entry = {k: v for k, v in policy.items() if k != "Tags"}
            entry["PolicyVersionList"] = [{**version, "IsDefaultVersion": True}]
            out.append(entry)
        return out

    def account_settings(self) -> dict[str, Any]:
        """The small account-wide reads, each optional."""
        iam = self.client("iam")
        return {
            # GAAD's RoleDetail lacks MaxSessionDuration (JIT grants need it); ListRoles has it.
            "max_sessions": self.optional(
                "role_max_session_duration",
                lambda: {
                    r["Arn"]: r.get("MaxSessionDuration")
                    for r in self.paginate("iam", "list_roles", "Roles", PaginationConfig=PAGE)
                },
                default={},
            ),
            "account_summary": self.optional(
                "account_summary", lambda: iam.get_account_summary()["SummaryMap"]
            ),
            "password_policy": self.optional("password_policy", self.password_policy),
            "virtual_mfa_devices": self.optional(
                "virtual_mfa_devices",
                lambda: self.paginate(
                    "iam", "list_virtual_mfa_devices", "VirtualMFADevices", PaginationConfig=PAGE
                ),
            ),
            "server_certificates": self.optional(
                "server_certificates",
                lambda: self.paginate(
                    "iam", "list_server_certificates", "ServerCertificateMetadataList", PaginationConfig=PAGE
                ),
            ),
            "saml_providers": self.optional(
                "saml_providers", lambda: iam.list_saml_providers().get("SAMLProviderList", [])
            ),
            "oidc_providers": self.optional(
                "oidc_providers",
                lambda: iam.list_open_id_connect_providers().get("OpenIDConnectProviderList", []),
            ),
        }

    def password_policy(self) -> dict[str, Any] | None:
        try:
            return self.client("iam").get_account_password_policy()["PasswordPolicy"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return None  # a real answer: the account has no password policy
            raise

    def access_analyzer(self) -> dict[str, Any]:
        try:
            analyzers = self.paginate("accessanalyzer", "list_analyzers", "analyzers")
            findings: list[dict[str, Any]] = []
            for analyzer in analyzers:
                if analyzer.get("status") != "ACTIVE" or analyzer.get("type") not in (
                    "ACCOUNT",
                    "ORGANIZATION",
                ):
                    continue  # unused-access analyzers do not report external access
                findings.extend(
                    {**f, "analyzerArn": analyzer["arn"]}
                    for f in self.paginate(
                        "accessanalyzer",
                        "list_findings_v2",
                        "findings",
                        analyzerArn=analyzer["arn"],
                        filter={"status": {"eq": ["ACTIVE"]}},
                    )
                )
        except (ClientError, BotoCoreError) as exc:
            reason = describe_aws_error(exc, "Access Analyzer")
            self.unknown.append({"source": "access_analyzer", "reason": reason})
            return {"status": "unknown", "reason": reason, "analyzers": [], "findings": []}
        return {"status": "ok", "reason": None, "analyzers": analyzers, "findings": findings}


def _default_version_only(policy: Mapping[str, Any]) -> dict[str, Any]:
    entry = dict(policy)
    # Real GAAD entries carry PolicyName; moto's do not. The name is the ARN's last segment.
    entry.setdefault("PolicyName", str(policy.get("Arn", "")).rsplit("/", 1)[-1])
    entry["PolicyVersionList"] = [
        v for v in policy.get("PolicyVersionList") or [] if v.get("IsDefaultVersion")
    ]
    return entry


def _attached_aws_policies(details: Mapping[str, list[Any]]) -> set[str]:
    arns: set[str] = set()
    for key in ("UserDetailList", "GroupDetailList", "RoleDetailList"):
        for entry in details[key]:
            for attached in entry.get("AttachedManagedPolicies") or []:
                if attached.get("PolicyArn", "").startswith(AWS_POLICY_PREFIX):
                    arns.add(attached["PolicyArn"])
            boundary = (entry.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn", "")
            if boundary.startswith(AWS_POLICY_PREFIX):
                arns.add(boundary)
    return arns


def collect(
    aws: AwsFactory,
    *,
    account_id: str | None = None,
    clock: Clock,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] | None = None,
) -> Inventory:
    """Read one account's IAM in a constant number of calls; see the module docstring.

    Raises ``CollectError`` when the account cannot be read at all (identity or GAAD refused).
    ``api_calls`` counts this collection's calls on ``aws.counter`` (retries included).
    """
    start_calls = aws.counter.total
    c = _Collector(aws, clock, sleep)
    step = progress or (lambda phase: None)
    collected_at = clock.now()
    try:
        if account_id is None:
            step("identity")
            account_id = c.client("sts").get_caller_identity()["Account"]
    except (ClientError, BotoCoreError) as exc:
        raise CollectError(
            describe_aws_error(exc, "reading the account's identity (GetCallerIdentity)")
        ) from None
    # The sources are independent and each is a round trip or a few: read them side by side.
    step("authorization details, credential report, account settings, access analyzer")
    details_future = _in_daemon_thread(c.authorization_details)
    report_future = _in_daemon_thread(c.optional, "credential_report", c.credential_report)
    settings_future = _in_daemon_thread(c.account_settings)
    analyzer_future = _in_daemon_thread(c.access_analyzer)
    try:
        details = details_future.result()
    except (ClientError, BotoCoreError) as exc:
        raise CollectError(describe_aws_error(exc, "reading IAM (GetAccountAuthorizationDetails)")) from None
    step("managed policies")
    aws_policies = c.aws_managed_policies(_attached_aws_policies(details))
    report = report_future.result()
    settings = settings_future.result()
    analyzer = analyzer_future.result()
    max_sessions = settings.pop("max_sessions")
    for role in details["RoleDetailList"]:
        if role.get("Arn") in max_sessions:
            role["MaxSessionDuration"] = max_sessions[role["Arn"]]
    summary = settings["account_summary"]
    password_policy = settings["password_policy"]
    virtual_mfa = settings["virtual_mfa_devices"]
    certificates = settings["server_certificates"]
    saml = settings["saml_providers"]
    oidc = settings["oidc_providers"]
    policies = [_default_version_only(p) for p in details["Policies"]] + aws_policies
    inventory: Inventory = {
        "account_id": account_id,
        "collected_at": iso(collected_at),
        "credential_report": report,
        "users": details["UserDetailList"],
        "groups": details["GroupDetailList"],
        "roles": details["RoleDetailList"],
        "policies": policies,
        "password_policy": password_policy,
        "account_summary": summary,
        "virtual_mfa_devices": virtual_mfa,
        "server_certificates": certificates,
        "saml_providers": saml,
        "oidc_providers": oidc,
        "access_analyzer": analyzer,
        "unknown_sources": sorted(c.unknown, key=lambda u: u["source"]),
    }
    inventory = _json_safe(inventory)
    inventory["api_calls"] = aws.counter.total - start_calls
    return inventory
