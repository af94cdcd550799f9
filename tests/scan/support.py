"""What the scan tests share: services over a temporary database, the realistic mixed account and
its expected findings, an organization of member accounts, and ``iamwarden`` run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3

from bot.services import Services
from bot.settings import Config, load_settings
from sandbox.aws import RootAccount
from tests.scan_helpers import ACCOUNT_ID, allow, days_ago, doc, trust

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
SELF_TRUST = trust({"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"})
PASSWORD = "Passw0rd!Passw0rd"


def services_for(tmp_path: Path, clock, config: dict | None = None) -> Services:
    settings = load_settings(db=tmp_path / "scan.db", config=Config.model_validate(config or {}))
    return Services.from_settings(settings, clock=clock)


def enable_mfa(iam, user: str) -> None:
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=user)["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName=user, SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )


def seed_mixed_account(aws, clock, access_analyzer) -> None:
    """A company with a bit of everything; each line says which finding it should (not) cause."""
    iam = boto3.client("iam")
    aws.set_root(RootAccount(mfa_active=True, password_last_used=days_ago(clock, 200)))  # nothing
    iam.update_account_password_policy(MinimumPasswordLength=14, PasswordReusePrevention=24)  # nothing
    analyzer = access_analyzer.add_analyzer("org")
    access_analyzer.add_finding(analyzer, f"arn:aws:iam::{ACCOUNT_ID}:role/vendor")  # EXTERNAL_ACCESS vendor

    iam.create_group(GroupName="admins")
    iam.attach_group_policy(GroupName="admins", PolicyArn=ADMIN)  # ADMIN_POLICY_ATTACHED admins
    iam.create_group(GroupName="developers")
    iam.attach_group_policy(GroupName="developers", PolicyArn=READ_ONLY)

    for name in ("alice", "bob", "carol", "dave", "erin", "frank", "gina"):
        iam.create_user(UserName=name, Tags=[{"Key": "email", "Value": f"{name}@example.com"}])
    # alice: admin through a group, console with MFA, active: nothing on alice
    iam.add_user_to_group(GroupName="admins", UserName="alice")
    iam.create_login_profile(UserName="alice", Password=PASSWORD)
    enable_mfa(iam, "alice")
    aws.set_password_last_used("alice", days_ago(clock, 1))
    # bob: developer on the console without MFA -> USER_CONSOLE_NO_MFA
    iam.add_user_to_group(GroupName="developers", UserName="bob")
    iam.create_login_profile(UserName="bob", Password=PASSWORD)
    aws.set_password_last_used("bob", days_ago(clock, 2))
    # carol: a key-only admin through her own inline policy -> ADMIN_NO_MFA, ADMIN_POLICY_ATTACHED,
    # USER_DIRECT_POLICIES
    iam.put_user_policy(UserName="carol", PolicyName="all", PolicyDocument=doc(allow("*")))
    iam.create_access_key(UserName="carol")
    aws.age_access_key("carol", created=days_ago(clock, 10), last_used=days_ago(clock, 1))
    # dave: an old key nobody uses -> ACCESS_KEY_NOT_ROTATED, ACCESS_KEY_UNUSED
    iam.add_user_to_group(GroupName="developers", UserName="dave")
    iam.create_access_key(UserName="dave")
    aws.age_access_key("dave", created=days_ago(clock, 200), last_used=days_ago(clock, 60))
    # erin: two live keys -> MULTIPLE_ACTIVE_KEYS
    iam.add_user_to_group(GroupName="developers", UserName="erin")
    for index in (0, 1):
        iam.create_access_key(UserName="erin")
        aws.age_access_key("erin", created=days_ago(clock, 5), last_used=days_ago(clock, 1), index=index)
    # frank: console with MFA, not used for 100 days -> PASSWORD_UNUSED
    iam.add_user_to_group(GroupName="developers", UserName="frank")
    iam.create_login_profile(UserName="frank", Password=PASSWORD)
    enable_mfa(iam, "frank")
    aws.set_password_last_used("frank", days_ago(clock, 100))
    # gina: can rewrite policies -> PRIVILEGE_ESCALATION, USER_DIRECT_POLICIES
    iam.put_user_policy(
        UserName="gina", PolicyName="policy-editor", PolicyDocument=doc(allow("iam:CreatePolicyVersion"))
    )
    # ... and holds a customer-managed policy she may rewrite into admin
    tools = iam.create_policy(PolicyName="gina-tools", PolicyDocument=doc(allow("s3:GetObject")))
    iam.attach_user_policy(UserName="gina", PolicyArn=tools["Policy"]["Arn"])

    roles = {
        "vendor": trust({"AWS": "arn:aws:iam::999988887777:root"}),  # ROLE_TRUST_EXTERNAL_NO_CONDITION
        "public": trust({"AWS": "*"}),  # ROLE_TRUST_PUBLIC
        "etl": SELF_TRUST,  # SERVICE_WILDCARD (s3:*)
        "old-batch": SELF_TRUST,  # ROLE_UNUSED
        "support": SELF_TRUST,  # the CIS support role: no SUPPORT_ROLE_MISSING
    }
    for name, trust_doc in roles.items():
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_doc)
        aws.set_role_last_used(name, days_ago(clock, 200 if name == "old-batch" else 3))
    iam.attach_role_policy(RoleName="vendor", PolicyArn=READ_ONLY)
    iam.put_role_policy(RoleName="etl", PolicyName="data", PolicyDocument=doc(allow("s3:*")))
    iam.attach_role_policy(RoleName="support", PolicyArn="arn:aws:iam::aws:policy/AWSSupportAccess")
    iam.create_policy(PolicyName="legacy-admin", PolicyDocument=doc(allow("*:*")))  # FULL_ADMIN_CUSTOM_POLICY


MIXED_EXPECTED = {
    ("ADMIN_POLICY_ATTACHED", "admins"),
    ("ADMIN_POLICY_ATTACHED", "carol"),
    ("ADMIN_NO_MFA", "carol"),
    ("USER_DIRECT_POLICIES", "carol"),
    ("USER_CONSOLE_NO_MFA", "bob"),
    ("ACCESS_KEY_NOT_ROTATED", "dave"),
    ("ACCESS_KEY_UNUSED", "dave"),
    ("MULTIPLE_ACTIVE_KEYS", "erin"),
    ("PASSWORD_UNUSED", "frank"),
    ("PRIVILEGE_ESCALATION", "gina"),
    ("USER_DIRECT_POLICIES", "gina"),
    ("ROLE_TRUST_EXTERNAL_NO_CONDITION", "vendor"),
    ("ROLE_TRUST_PUBLIC", "public"),
    ("SERVICE_WILDCARD", "etl"),
    ("ROLE_UNUSED", "old-batch"),
    ("FULL_ADMIN_CUSTOM_POLICY", "legacy-admin"),
    ("EXTERNAL_ACCESS", "vendor"),
}


def run_cli(tmp_path: Path, *args: str, config: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IAMWARDEN_"))}
    env["IAMWARDEN_DB"] = str(tmp_path / "cli.db")
    if config is not None:
        path = tmp_path / "iamwarden.toml"
        path.write_text(config)
        env["IAMWARDEN_CONFIG"] = str(path)
    return subprocess.run(
        [sys.executable, "-m", "iamwarden", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def seed_small(aws, clock):
    iam = boto3.client("iam")
    aws.set_root(RootAccount(mfa_active=True))
    iam.create_user(UserName="bob")
    iam.create_login_profile(UserName="bob", Password=PASSWORD)
    aws.set_password_last_used("bob", days_ago(clock, 1))
    iam.create_role(RoleName="open", AssumeRolePolicyDocument=trust({"AWS": "*"}))
    iam.update_account_password_policy(MinimumPasswordLength=14, PasswordReusePrevention=24)


def create_organization(members: int) -> list[str]:
    org = boto3.client("organizations")
    org.create_organization(FeatureSet="ALL")
    return [
        org.create_account(Email=f"m{i}@example.com", AccountName=f"member{i}")["CreateAccountStatus"][
            "AccountId"
        ]
        for i in range(members)
    ]


def scan_threads_done(timeout: float = 30) -> None:
    """Wait for the abandoned account's thread (released by the proxy) to finish its late work."""
    import threading

    for thread in [t for t in threading.enumerate() if t.name.startswith(("scan-", "collect"))]:
        thread.join(timeout)


def stored_findings(services) -> dict[str, list[tuple]]:
    rows = services.store.execute(
        "SELECT s.account_id, f.check_id, f.status, f.principal_arn, f.fingerprint, f.suppressed "
        "FROM findings f JOIN snapshots s ON s.id = f.snapshot_id ORDER BY f.id"
    ).fetchall()
    out: dict[str, list[tuple]] = {}
    for account, *rest in rows:
        out.setdefault(account, []).append(tuple(rest))
    return out
