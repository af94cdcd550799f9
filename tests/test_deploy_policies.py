"""The shipped policy documents, proven: every feature runs under moto WITH IAM enforcement as a
principal holding exactly the documents for that feature, and is refused cleanly without them.

The enforcing moto runs in its own process (tests/enforced_moto.py): moto's enforcement switch and
backends are process-wide, so turning it on in the test process would deny every other test.
Every call the bot makes goes through a session-level botocore ``after-call`` hook that records any
AccessDenied, so a feature that "worked" while a call was quietly denied still fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from bot.aws import ACCESS_DENIED_CODES, AwsFactory
from bot.permissions import FEATURE_POLICIES, render_policy, shipped_json
from bot.settings import Config
from tests.conftest import ACCOUNT_ID, DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[1]
BOT_USER = "iamwarden-bot"
BOT_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/{BOT_USER}"


class EnforcedAws:
    """The enforcing moto process: admin setup with enforcement off, then ``enforce()``."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.enforced_moto"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.endpoint = self.process.stdout.readline().strip()
        assert self.endpoint.startswith("http://127.0.0.1:"), "enforcing moto did not start"

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)

    def _post(self, path: str, body: bytes = b"") -> None:
        # text/plain: a form content type makes Flask consume the body before moto reads it.
        request = urllib.request.Request(
            self.endpoint + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def reset(self) -> None:
        self._post("/moto-api/reset-auth", b"inf")
        self._post("/moto-api/reset")

    def enforce(self) -> None:
        self._post("/moto-api/reset-auth", b"0")

    def relax(self) -> None:
        """Enforcement off again, so the test can look at AWS state as an administrator."""
        self._post("/moto-api/reset-auth", b"inf")

    def admin(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def bot_principal(self, documents: dict[str, dict]) -> dict[str, str]:
        """An IAM user holding exactly ``documents`` (one inline policy each); its access key."""
        iam = self.admin("iam")
        iam.create_user(UserName=BOT_USER)
        for name, document in documents.items():
            iam.put_user_policy(UserName=BOT_USER, PolicyName=name, PolicyDocument=json.dumps(document))
        key = iam.create_access_key(UserName=BOT_USER)["AccessKey"]
        return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}


class DeniedCalls:
    """Every AccessDenied any client of the session received, as ``service:Operation``."""

    def __init__(self, session: boto3.session.Session):
        self.calls: list[str] = []
        self._lock = threading.Lock()
        session.events.register("after-call.*.*", self._record)

    def _record(self, parsed: dict, model: Any, **_: Any) -> None:
        code = (parsed or {}).get("Error", {}).get("Code")
        status = (parsed or {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ACCESS_DENIED_CODES or status == 403:
            with self._lock:
                self.calls.append(f"{model.service_model.service_name}:{model.name}")


@pytest.fixture(scope="module")
def enforced():
    aws = EnforcedAws()
    yield aws
    aws.stop()


@pytest.fixture
def as_bot(enforced: EnforcedAws, monkeypatch: pytest.MonkeyPatch):
    """``as_bot(features, config)`` → (AwsFactory acting as the bot principal, DeniedCalls).

    Builds the principal from the rendered shipped documents of ``features`` and turns enforcement
    on; everything the test sets up in AWS must happen before (through ``enforced.admin``)."""

    def become(features: list[str], config: Config) -> tuple[AwsFactory, DeniedCalls]:
        documents = {f: render_policy(f, config) for f in features}
        creds = enforced.bot_principal(documents)
        monkeypatch.setenv("AWS_ENDPOINT_URL", enforced.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
        # An IAM user's key carries no session token; moto rejects one that does.
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
        session = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            region_name="us-east-1",
        )
        denied = DeniedCalls(session)
        enforced.enforce()
        return AwsFactory(region="us-east-1", session=session), denied

    enforced.reset()
    yield become
    enforced.reset()


def populate_account(enforced: EnforcedAws) -> None:
    """A small account: users with keys and a password, a group, roles, customer and AWS policies."""
    iam = enforced.admin("iam")
    iam.create_user(UserName="ada")
    iam.create_access_key(UserName="ada")
    iam.create_login_profile(UserName="ada", Password="Passw0rd!Passw0rd!")
    iam.create_group(GroupName="devs")
    iam.add_user_to_group(GroupName="devs", UserName="ada")
    policy = iam.create_policy(
        PolicyName="deploy",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )["Policy"]
    iam.attach_group_policy(GroupName="devs", PolicyArn=policy["Arn"])
    iam.create_role(
        RoleName="ci",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    iam.put_role_policy(
        RoleName="ci",
        PolicyName="inline",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}],
            }
        ),
    )


# -- the documents ----------------------------------------------------------------------------------


@pytest.mark.parametrize("feature", sorted(FEATURE_POLICIES))
def test_each_shipped_policy_file_is_the_documented_feature_policy(feature):
    policy = FEATURE_POLICIES[feature]
    assert (ROOT / policy.file).read_text() == shipped_json(feature)
    assert policy.file in (ROOT / "README.md").read_text()


def test_iam_policy_json_is_the_read_only_scan_policy_and_grants_no_write():
    assert json.loads((ROOT / "iam-policy.json").read_text()) == json.loads(shipped_json("scan"))
    scan_actions = set(FEATURE_POLICIES["scan"].actions)
    assert {"iam:ListRoles", "iam:ListPolicies", "iam:GetPolicy", "iam:GetPolicyVersion"} <= scan_actions
    writes = {"iam:PutRolePolicy", "iam:UpdateAccessKey", "iam:DeleteLoginProfile", "sts:AssumeRole"}
    assert not scan_actions & writes


def test_opt_in_documents_are_scoped_to_what_the_config_names():
    config = Config.model_validate(
        {
            **DEFAULT_CONFIG,
            "alerts": {"queue_url": f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT_ID}/iamwarden-alerts"},
        }
    )
    jit = render_policy("jit", config)
    for statement in jit["Statement"]:
        assert statement["Resource"] == [f"arn:aws:iam::{ACCOUNT_ID}:role/prod-admin"]
    alerts = {s["Sid"]: s for s in render_policy("alerts", config)["Statement"]}
    assert alerts["AlertsQueue"]["Resource"] == [f"arn:aws:sqs:eu-west-1:{ACCOUNT_ID}:iamwarden-alerts"]
    assert alerts["AlertsEventHistory"]["Action"] == ["cloudtrail:LookupEvents"]
    org = {s["Sid"]: s for s in render_policy("org-scan", config)["Statement"]}
    assert org["AssumeAuditRole"]["Resource"] == "arn:aws:iam::*:role/OrganizationAccountAccessRole"
    renamed = Config.model_validate(
        {"organizations": {"enabled": True, "audit_role_name": "iamwarden-audit"}}
    )
    org = {s["Sid"]: s for s in render_policy("org-scan", renamed)["Statement"]}
    assert org["AssumeAuditRole"]["Resource"] == "arn:aws:iam::*:role/iamwarden-audit"


# -- scan and answers under enforcement -------------------------------------------------------------


def scan_services(tmp_path: Path, aws: AwsFactory, config: Config | None = None):
    from bot.clock import FrozenClock
    from bot.services import Services
    from bot.settings import load_settings

    settings = load_settings(db=tmp_path / "iamwarden.db", config=config or Config())
    services = Services.from_settings(settings, clock=FrozenClock(datetime(2026, 11, 29, 12, tzinfo=UTC)))
    services.aws = aws
    return services


def test_scan_runs_under_enforcement_with_exactly_the_scan_policy(enforced, as_bot, tmp_path):
    from bot.scan import scan_accounts

    populate_account(enforced)
    aws, denied = as_bot(["scan"], Config())
    services = scan_services(tmp_path, aws)
    [scan] = scan_accounts(services)
    assert scan.ok, scan.error
    assert denied.calls == []
    names = {f.principal_name for f in scan.findings}
    assert "ada" in names  # the scan really read the account
    unknown = scan.inventory["unknown_sources"]
    assert not [u for u in unknown if "denied" in u["reason"].lower()], unknown


def test_scan_without_the_policy_names_the_missing_action_and_the_policy_file(enforced, as_bot, tmp_path):
    from bot.scan import scan_accounts

    populate_account(enforced)
    aws, denied = as_bot([], Config())
    [scan] = scan_accounts(scan_services(tmp_path, aws))
    assert not scan.ok
    assert "iam:GetAccountAuthorizationDetails" in scan.error or "iam:" in scan.error
    assert "policies/scan.json" in scan.error
    assert denied.calls


def test_bots_own_principal_is_suppressed_as_by_design_and_visible(enforced, as_bot, tmp_path):
    from bot.scan import scan_accounts

    populate_account(enforced)
    config = Config.model_validate(DEFAULT_CONFIG)
    enforced.admin("iam").create_role(RoleName="prod-admin", AssumeRolePolicyDocument=_trust_bot())
    aws, denied = as_bot(["scan", "jit", "offboarding"], config)
    [scan] = scan_accounts(scan_services(tmp_path, aws, config))
    assert scan.ok and denied.calls == []
    own = [f for f in scan.findings if f.principal_arn == BOT_ARN]
    assert own, "the bot's principal (PutRolePolicy + AssumeRole on its roles) should be found"
    for finding in own:
        assert finding.suppressed
        assert finding.suppression_reason == "iamwarden's own role: privileges are by design"


def test_answers_come_from_the_snapshot_under_enforcement(enforced, as_bot, make_bot):
    from bot.scan import scan_accounts

    populate_account(enforced)
    bot = make_bot()
    aws, denied = as_bot(["scan"], bot.services.config)
    bot.services.aws = aws
    scan_accounts(bot.services)
    can = bot.command("U0ALICE", "can ada s3:GetObject")
    assert can.status == 200 and "deploy" in json.dumps(can.json())  # allowed through the group policy
    assert bot.command("U0SEC1", "findings").status == 200
    bot.slack.wait_for("response_url", lambda c: "ada" in json.dumps(c.args))
    assert denied.calls == []


# -- just-in-time access under enforcement ----------------------------------------------------------


def _trust_bot() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": BOT_ARN},
                    "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                }
            ],
        }
    )


@pytest.fixture
def federation():
    from sandbox.federation import FederationStandIn

    stand_in = FederationStandIn().start()
    yield stand_in
    stand_in.stop()


def _jit_bot(enforced, as_bot, make_bot, federation, features):
    enforced.admin("iam").create_role(
        RoleName="prod-admin", AssumeRolePolicyDocument=_trust_bot(), MaxSessionDuration=3600
    )
    bot = make_bot({**DEFAULT_CONFIG, "access": {"federation_url": federation.url}})
    aws, denied = as_bot(features, bot.services.config)
    bot.services.aws = aws
    return bot, denied


def _request_and_approve(bot):
    from bot import access
    from handlers.ids import ActionId

    assert bot.command("U0ALICE", "request prod-admin 2h deploy hotfix").status == 200
    # The request is recorded after the ack, by the lazy listener: wait for its approval card.
    bot.slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "C0APPROVALS" and ActionId.ACCESS_APPROVE in json.dumps(c.args),
    )
    request_id = bot.store.execute("SELECT id FROM access_requests ORDER BY rowid DESC").fetchone()[0]
    _click(bot, "U0LEAD1", ActionId.ACCESS_APPROVE, request_id, "C0APPROVALS")
    return access.get_request(bot.services, request_id)


def _click(bot, user, action_id, request_id, channel, message=None):
    if message is None:
        message = next(m for m in bot.slack.messages(channel) if action_id in json.dumps(m.get("blocks", [])))
    assert (
        bot.sender.block_action(user, action_id, request_id, message=message, channel_id=channel).status
        == 200
    )


def test_jit_grant_reissue_and_revoke_under_enforcement_with_exactly_scan_and_jit(
    enforced, as_bot, make_bot, federation, clock
):
    from bot import access
    from handlers.ids import ActionId

    bot, denied = _jit_bot(enforced, as_bot, make_bot, federation, ["scan", "jit"])
    request = _request_and_approve(bot)
    bot.slack.wait_for("chat.postEphemeral", lambda c: c.args.get("text", "").startswith("Credentials for"))
    assert access.get_request(bot.services, request.id).state == "granted"
    clock.advance(minutes=70)
    _click(bot, "U0ALICE", ActionId.ACCESS_REISSUE, request.id, "C0APPROVALS")
    bot.slack.wait_for(
        "chat.postEphemeral", lambda c: c.args.get("text", "").startswith("Credentials for"), count=2
    )
    _click(bot, "U0LEAD1", ActionId.ACCESS_REVOKE, request.id, "C0APPROVALS")
    [answer] = bot.slack.wait_for("chat.postEphemeral", lambda c: c.args["user"] == "U0LEAD1")
    assert "Live sessions were cut off" in answer.args["text"]
    enforced.relax()
    document = enforced.admin("iam").get_role_policy(
        RoleName="prod-admin", PolicyName=access.REVOCATION_POLICY_NAME
    )
    assert document["PolicyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert denied.calls == []


def test_jit_without_its_policy_is_refused_cleanly_naming_the_policy_file(
    enforced, as_bot, make_bot, federation
):
    from bot import access

    bot, denied = _jit_bot(enforced, as_bot, make_bot, federation, ["scan"])
    request = _request_and_approve(bot)
    # The requester and the request message are told why, naming the policy that would grant it.
    bot.slack.wait_for("chat.postMessage", lambda c: "policies/jit.json" in json.dumps(c.args))
    assert access.get_request(bot.services, request.id).state != "granted"
    assert "sts:AssumeRole" in denied.calls


# -- offboarding and alerts under enforcement -------------------------------------------------------


def test_offboarding_disables_access_under_enforcement_and_is_refused_without_its_policy(
    enforced, as_bot, tmp_path
):
    from bot.identity import OffboardingError, disable_access
    from bot.store import Store

    populate_account(enforced)
    store = Store(tmp_path / "iamwarden.db")
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    aws, denied = as_bot(["scan"], Config())
    with pytest.raises(OffboardingError) as refused:
        disable_access(aws, store, account_id=ACCOUNT_ID, user_name="ada", actor="U0SEC1", at=now)
    assert "iam:ListAccessKeys" in str(refused.value) and "policies/offboarding.json" in str(refused.value)
    enforced.reset()
    populate_account(enforced)
    aws, denied = as_bot(["scan", "offboarding"], Config())
    result = disable_access(aws, store, account_id=ACCOUNT_ID, user_name="ada", actor="U0SEC1", at=now)
    assert result.login_profile_deleted and len(result.keys_deactivated) == 1
    assert denied.calls == []
    enforced.relax()
    keys = enforced.admin("iam").list_access_keys(UserName="ada")["AccessKeyMetadata"]
    assert [k["Status"] for k in keys] == ["Inactive"]


def _alerts_queue(enforced) -> str:
    from tests.alerts.support import event

    sqs = enforced.admin("sqs")
    url = sqs.create_queue(QueueName="iamwarden-alerts")["QueueUrl"]
    record = event("console_login_root_success", datetime(2026, 11, 29, 11, 59, tzinfo=UTC))
    envelope = {"source": "aws.signin", "detail-type": "AWS Console Sign In via CloudTrail", "detail": record}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(envelope))
    return url


def test_alerts_consume_the_named_queue_under_enforcement(enforced, as_bot, tmp_path):
    from bot.alerts.sources import consume_queue

    url = _alerts_queue(enforced)
    config = Config.model_validate({"alerts": {"queue_url": url}})
    aws, denied = as_bot(["scan", "alerts"], config)
    services = scan_services(tmp_path, aws, config)
    report = consume_queue(services, wait_seconds=0, max_batches=1)
    assert report.error is None
    assert report.processed == 1 and report.deleted == 1 and report.alert_ids
    assert denied.calls == []


def test_alerts_without_their_policy_are_refused_cleanly_naming_the_policy_file(enforced, as_bot, tmp_path):
    from bot.alerts.sources import consume_queue

    url = _alerts_queue(enforced)
    config = Config.model_validate({"alerts": {"queue_url": url}})
    aws, denied = as_bot(["scan"], config)
    report = consume_queue(scan_services(tmp_path, aws, config), wait_seconds=0, max_batches=1)
    assert "sqs:ReceiveMessage" in report.error and "policies/alerts.json" in report.error
    assert denied.calls == ["sqs:ReceiveMessage"]


def test_alerts_policy_for_one_queue_does_not_reach_another(enforced, as_bot, tmp_path):
    from bot.alerts.sources import consume_queue

    url = _alerts_queue(enforced)
    other = enforced.admin("sqs").create_queue(QueueName="someone-elses-queue")["QueueUrl"]
    config = Config.model_validate({"alerts": {"queue_url": url}})
    aws, denied = as_bot(["scan", "alerts"], config)
    report = consume_queue(
        scan_services(tmp_path, aws, config), queue_url=other, wait_seconds=0, max_batches=1
    )
    assert report.error and "policies/alerts.json" in report.error


# -- the CloudFormation template --------------------------------------------------------------------

CFN_LINT = [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())"]


def test_cloudformation_template_is_generated_from_the_feature_policies_and_passes_cfn_lint():
    from bot.permissions import cloudformation_json, cloudformation_template

    path = ROOT / "deploy" / "iamwarden-role.json"
    assert path.read_text() == cloudformation_json(), "regenerate: iamwarden policy --cloudformation"
    lint = subprocess.run([*CFN_LINT, str(path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    role = cloudformation_template()["Resources"]["IamwardenRole"]["Properties"]
    by_name = {}
    for entry in role["Policies"]:
        if "Fn::If" in entry:
            _condition, entry, otherwise = entry["Fn::If"]
            assert otherwise == {"Ref": "AWS::NoValue"}  # an opt-in feature is absent unless chosen
        by_name[entry["PolicyName"]] = entry["PolicyDocument"]
    assert set(by_name) == {f"iamwarden-{f}" for f in FEATURE_POLICIES}
    for feature, policy in FEATURE_POLICIES.items():
        actions = [a for s in by_name[f"iamwarden-{feature}"]["Statement"] for a in s["Action"]]
        assert actions == list(policy.actions)
    assert "Fn::If" not in json.dumps(role["Policies"][0])  # scan is always there


def test_cloudformation_template_with_a_typo_is_caught_by_cfn_lint(tmp_path):
    from bot.permissions import cloudformation_template

    template = cloudformation_template()
    statement = template["Resources"]["IamwardenRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ][0]
    statement["Action"].append("iam:ListRolez")
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(template))
    lint = subprocess.run([*CFN_LINT, str(path)], capture_output=True, text=True)
    assert lint.returncode != 0 and "listrolez" in lint.stdout.lower()


def test_readme_names_each_policy_with_its_action_count():
    import re

    readme = (ROOT / "README.md").read_text()
    for policy in FEATURE_POLICIES.values():
        row = re.search(rf"^\| `{re.escape(policy.file)}` \|.*\| (\d+) \|", readme, re.M)
        assert row, policy.file
        assert int(row.group(1)) == len(policy.actions), policy.file


def test_policy_command_prints_the_documents_the_config_needs(tmp_path):
    config = tmp_path / "iamwarden.toml"
    config.write_text(
        '[[roles]]\nname = "prod-admin"\narn = "arn:aws:iam::123456789012:role/prod-admin"\napprovers = ["U0LEAD1"]\n'
    )
    env = {"IAMWARDEN_CONFIG": str(config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "iamwarden", "policy"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    documents = json.loads(out.stdout)
    assert set(documents) == {"policies/scan.json", "policies/jit.json", "policies/offboarding.json"}
    assert documents["policies/jit.json"]["Statement"][0]["Resource"] == [
        "arn:aws:iam::123456789012:role/prod-admin"
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "iamwarden", "policy", "jitt"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "jitt" in bad.stderr


# -- iamwarden check under enforcement --------------------------------------------------------------


def test_check_finds_a_missing_feature_policy_by_its_read_probes(enforced, as_bot, tmp_path):
    from bot.readiness import Status, aws_rows, ready
    from bot.settings import load_settings

    enforced.admin("iam").create_role(RoleName="prod-admin", AssumeRolePolicyDocument=_trust_bot())
    config = Config.model_validate(DEFAULT_CONFIG)
    settings = load_settings(db=tmp_path / "x.db", config=config)
    aws, _ = as_bot(["scan"], config)
    rows = aws_rows(settings, aws)
    assert not ready(rows)
    [jit] = [r for r in rows if r.status == Status.FAIL]
    assert jit.area == "jit" and "iam:GetRolePolicy" in jit.detail and "policies/jit.json" in jit.detail
    [offboarding] = [r for r in rows if r.area == "offboarding"]
    assert offboarding.status == Status.WARN and "policies/offboarding.json" in offboarding.detail
    enforced.reset()
    enforced.admin("iam").create_role(RoleName="prod-admin", AssumeRolePolicyDocument=_trust_bot())
    aws, denied = as_bot(["scan", "jit", "offboarding"], config)
    rows = aws_rows(settings, aws)
    assert ready(rows), [r for r in rows if r.status != Status.OK]
    assert denied.calls == []
