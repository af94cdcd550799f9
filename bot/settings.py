"""Settings: environment variables (Slack's conventional names, ``IAMWARDEN_*``) plus a TOML file.

Built once at start-up (``load_settings``) and passed down; nothing else reads the environment.
Secrets are ``SecretStr`` and revealed only at the call that needs them.
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

_DURATION = re.compile(
    r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*(?:(\d+)\s*s)?\s*$", re.I
)


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse ``"2h"``, ``"90m"``, ``"1h30m"``, ``"7d"`` or a number of seconds into a timedelta.

    Raises ValueError with a message a person can act on.
    """
    if isinstance(text, timedelta):
        return text
    raw = str(text).strip()
    try:
        if isinstance(text, int | float):
            return timedelta(seconds=text)
        if raw.isdigit():
            return timedelta(seconds=int(raw))
        match = _DURATION.match(raw)
        if not raw or not match or not any(match.groups()):
            raise ValueError(f"'{raw}' is not a duration; use forms like 30m, 2h, 1h30m or 7d")
        days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        # timedelta stops at 999,999,999 days: "99999999999h" is a mistake, not a crash.
        raise ValueError(f"'{raw}' is far too long to be a duration") from None


Duration = Annotated[timedelta, Field()]


class _Section(BaseModel):
    # Typos in the config file are errors, not silently ignored settings.
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _durations(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields.get(info.field_name)
        if field is not None and field.annotation in (timedelta, timedelta | None) and value is not None:
            duration = parse_duration(value)
            if duration < timedelta(0):
                raise ValueError(f"'{value}' is negative; a duration must be positive")
            return duration
        return value


# Who may act, in [slack] security_team, approvers and requesters: a Slack user id (U…/W…),
# a user-group id (S…) or a user-group handle (@security).
_PERSON_OR_GROUP = re.compile(r"^(?:[UW][A-Z0-9]{2,}|S[A-Z0-9]{2,}|@[\w.-]+)$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
# AWS caps a role session at 12 hours (MaxSessionDuration), so a longer window cannot be served.
MAX_ROLE_SESSION = timedelta(hours=12)


def _human(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def _people(value: list[str]) -> list[str]:
    for entry in value:
        if not _PERSON_OR_GROUP.match(entry):
            raise ValueError(
                f"'{entry}' is neither a Slack user id (U0123ABC), a user-group id (S0123ABC) nor a @group handle"
            )
    return value


def _role_arn(value: str | None) -> str | None:
    if value is not None and not _ROLE_ARN.match(value):
        raise ValueError(f"'{value}' is not a role ARN (arn:aws:iam::123456789012:role/NAME)")
    return value


class SlackConfig(_Section):
    approvals_channel: str | None = None
    security_channel: str | None = None
    digest_channel: str | None = None
    alerts_channel: str | None = None
    # Slack user ids (U…) and/or user-group handles ("@security").
    security_team: list[str] = Field(default_factory=list)

    _security_team = field_validator("security_team")(_people)


class RoleConfig(_Section):
    name: str
    arn: str
    max_duration: timedelta = timedelta(hours=1)
    approvers: list[str] = Field(default_factory=list)
    approvals_required: int = Field(default=1, ge=1)
    break_glass: bool = False
    # False, or a regular expression the ticket must match.
    require_ticket: bool | str = False
    # Who may request it: user ids / group handles; empty means everyone.
    requesters: list[str] = Field(default_factory=list)
    # Who may break glass on it (user ids / group handles); required when break_glass = true.
    break_glass_requesters: list[str] = Field(default_factory=list)
    # Sessions may assume further roles (then a revocation on this role does not reach them).
    allow_role_chaining: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _break_glass_needs_requesters(self) -> RoleConfig:
        if self.break_glass and not self.break_glass_requesters:
            raise ValueError(
                f"role {self.name}: break_glass = true needs break_glass_requesters (user ids or @groups)"
            )
        return self

    @property
    def account_id(self) -> str:
        parts = self.arn.split(":")
        return parts[4] if len(parts) > 4 else ""

    _arn = field_validator("arn")(_role_arn)
    _approvers = field_validator("approvers", "requesters")(_people)

    @field_validator("max_duration")
    @classmethod
    def _at_most_a_session(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0")
        if value > MAX_ROLE_SESSION:
            raise ValueError(f"{_human(value)} is longer than AWS's 12 h maximum role session")
        return value

    @field_validator("require_ticket")
    @classmethod
    def _ticket_pattern(cls, value: bool | str) -> bool | str:
        if isinstance(value, str):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"'{value}' is not a valid regular expression ({exc})") from None
        return value

    @model_validator(mode="after")
    def _enough_approvers(self) -> RoleConfig:
        # Groups may hold any number of people (`iamwarden check` counts them); user ids are one each.
        # No approvers at all is a warning (Config.warnings), not an error.
        if self.approvers and not any(a.startswith(("@", "S")) for a in self.approvers):
            possible = len(set(self.approvers))
            if self.approvals_required > possible:
                raise ValueError(
                    f"approvals_required = {self.approvals_required} but only {possible} approver(s) can approve"
                )
        return self


class AccountConfig(_Section):
    id: str
    name: str = ""
    # Role to assume to read this account; empty means the bot's own credentials.
    role_arn: str | None = None
    external_id: str | None = None

    _role_arn = field_validator("role_arn")(_role_arn)

    @field_validator("id")
    @classmethod
    def _twelve_digits(cls, value: str) -> str:
        if not _ACCOUNT_ID.match(value):
            raise ValueError(f"'{value}' is not an AWS account id (12 digits)")
        return value


class OrganizationsConfig(_Section):
    enabled: bool = False
    # Role name assumed in each member account.
    audit_role_name: str = "OrganizationAccountAccessRole"
    exclude: list[str] = Field(default_factory=list)


class ScanConfig(_Section):
    key_rotation_days: int = 90
    key_unused_days: int = 45
    password_unused_days: int = 45
    role_unused_days: int = 90
    root_recent_use_days: int = 90
    # Snapshot retention, pruned after each scan: the newest keep_snapshots of each account, plus one
    # a week (the newest of its week) for keep_weekly_days. An account's latest snapshot is always kept.
    keep_snapshots: int = Field(default=14, ge=1)
    keep_weekly_days: int = Field(default=90, ge=0)
    # An active key never used is reported once it is older than this (a fresh key is not news).
    key_never_used_grace_days: int = 7
    min_password_length: int = 14
    password_reuse_prevention: int = 24
    # Accounts read at a time. Reading is mostly waiting on AWS; 16 overlap the waits (credential
    # report polls, round trips) of a large organization: 100 accounts scan in 14 s against a
    # recording, 18 s with 4 (bench.scan --org 100 --replay).
    max_workers: int = 16
    # Worker processes for the checks of a scan of 8 accounts or more (None: one per core but
    # one, at most 4; 0: the checks run in the scan's own process).
    check_processes: int | None = Field(default=None, ge=0)
    # Deadlines: one account's reading (AssumeRole included), and the whole scan. An account past
    # its deadline is recorded as failed and its previous snapshot stays the one answers use.
    account_timeout: timedelta = timedelta(minutes=5)
    scan_timeout: timedelta = timedelta(minutes=30)
    # Policies and roles whose change is critical (alerts) or which are crown jewels.
    critical_policies: list[str] = Field(default_factory=list)

    @field_validator("account_timeout", "scan_timeout")
    @classmethod
    def _positive_deadline(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a deadline must be longer than zero (e.g. 5m or 300)")
        return value


class IdentityConfig(_Section):
    # IAM user tag whose value is matched to the Slack member's email.
    tag_key: str = "email"
    # Explicit mapping: Slack user id -> list of IAM principal names or ARNs. Wins over tags.
    map: dict[str, list[str]] = Field(default_factory=dict)
    directory_refresh: timedelta = timedelta(hours=6)


class ScheduleConfig(_Section):
    timezone: str = "UTC"
    scan_cron: str = "0 7 * * *"
    digest_cron: str = "30 7 * * *"
    catch_up_grace: timedelta = timedelta(hours=6)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone (e.g. UTC, Europe/Berlin)") from None
        return value

    @field_validator("scan_cron", "digest_cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"'{value}' is not a 5-field crontab expression (e.g. \"0 7 * * 1-5\")")
        try:
            CronTrigger(minute=fields[0], hour=fields[1], day=fields[2], month=fields[3], timezone="UTC")
            _check_day_of_week(fields[4])
        except ValueError as exc:
            raise ValueError(f"'{value}' is not a valid crontab expression ({exc})") from None
        return value


class AccessConfig(_Section):
    pending_timeout: timedelta = timedelta(minutes=60)
    min_duration: timedelta = timedelta(minutes=15)
    deliver_credentials: str = Field(default="ephemeral", pattern="^(ephemeral|dm)$")
    federation_url: str = "https://signin.aws.amazon.com/federation"
    max_extensions: int = Field(default=2, ge=0)
    break_glass_daily_cap: int = Field(default=1, ge=0)
    # How often the security channel is reminded of a break-glass use nobody has reviewed yet.
    review_reminder_every: timedelta = timedelta(hours=24)


class AlertRuleConfig(_Section):
    """Per-rule overrides under ``[alerts.rules.RULE_ID]``; unset fields keep the catalog's default."""

    enabled: bool = True
    severity: str | None = Field(default=None, pattern="^(critical|high|medium|low)$")
    threshold: int | None = Field(default=None, ge=1)
    window: timedelta | None = None
    dedupe_window: timedelta | None = None


def _check_day_of_week(field: str) -> None:
    """The crontab day-of-week field: *, names, or 0-7 with ranges, lists and steps."""
    if not re.fullmatch(
        r"(\*|[0-7a-zA-Z]{1,3}(-[0-7a-zA-Z]{1,3})?)(/\d+)?(,(\*|[0-7a-zA-Z]{1,3}(-[0-7a-zA-Z]{1,3})?)(/\d+)?)*",
        field,
    ):
        raise ValueError(f"day of week '{field}'")


class AlertsConfig(_Section):
    queue_url: str | None = None
    lookup_events: bool = False
    poll_interval: timedelta = timedelta(seconds=20)
    actor_confirm_timeout: timedelta = timedelta(minutes=30)
    # Rule id (bot/alerts/rules.py RULES) -> overrides.
    rules: dict[str, AlertRuleConfig] = Field(default_factory=dict)
    # Role / policy names or ARNs whose change is critical (the JIT roles in [[roles]] always are).
    critical_roles: list[str] = Field(default_factory=list)
    critical_policies: list[str] = Field(default_factory=list)
    # Managed policies that count as "admin" for ADMIN_POLICY_ATTACHED.
    admin_policies: list[str] = Field(default_factory=lambda: ["arn:aws:iam::aws:policy/AdministratorAccess"])
    # ARN patterns (``*``/``?`` within segments) of the automation that creates IAM users and its
    # own keys as routine (Terraform, SCIM): IAM_PRINCIPAL_CREATED stays quiet for them. Assumed
    # roles match by their role ARN (``arn:aws:iam::123456789012:role/terraform``) too.
    automation_principals: list[str] = Field(default_factory=list)
    # SQS long-poll wait (0-20 s) and how many receive batches one poll may take.
    sqs_wait_seconds: int = Field(default=20, ge=0, le=20)
    sqs_max_batches: int = Field(default=10, ge=1)
    # LookupEvents: how far back the first poll reads, how much each poll re-reads (CloudTrail
    # can add events late; re-read events are skipped by id), and the request rate (AWS allows 2/s).
    lookup_initial_lookback: timedelta = timedelta(hours=1)
    lookup_overlap: timedelta = timedelta(minutes=15)
    lookup_rate_per_second: float = Field(default=2.0, gt=0, le=2.0)
    # Event history is per region; IAM, STS and console sign-in events are recorded in us-east-1.
    lookup_region: str = "us-east-1"

    @field_validator("queue_url")
    @classmethod
    def _queue_url(cls, value: str | None) -> str | None:
        from urllib.parse import urlparse

        if value is None:
            return value
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path.count("/") < 2:
            raise ValueError(
                f"'{value}' is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
            )
        return value

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: dict[str, AlertRuleConfig]) -> dict[str, AlertRuleConfig]:
        from bot.alerts.rules import RULES  # late import: bot.alerts imports this module

        unknown = sorted(set(value) - set(RULES))
        if unknown:
            raise ValueError(f"unknown alert rule(s) {', '.join(unknown)}; known: {', '.join(RULES)}")
        return value


class NudgesConfig(_Section):
    # Opt-in: DM owners about their own findings, at most once per finding per every_days.
    enabled: bool = False
    every_days: int = Field(default=7, ge=1)


class SuppressionConfig(_Section):
    fingerprint: str | None = None
    check_id: str | None = None
    principal: str | None = None
    reason: str
    expires: str | None = None

    @field_validator("expires")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"'{value}' is not an ISO 8601 date (YYYY-MM-DD)") from None
        return value

    @model_validator(mode="after")
    def _says_what(self) -> SuppressionConfig:
        if not self.fingerprint and not self.check_id:
            raise ValueError("a suppression needs a fingerprint or a check_id")
        return self


class Config(_Section):
    """The TOML file named by ``IAMWARDEN_CONFIG``."""

    slack: SlackConfig = Field(default_factory=SlackConfig)
    roles: list[RoleConfig] = Field(default_factory=list)
    accounts: list[AccountConfig] = Field(default_factory=list)
    organizations: OrganizationsConfig = Field(default_factory=OrganizationsConfig)
    scan: ScanConfig = Field(default_factory=ScanConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    nudges: NudgesConfig = Field(default_factory=NudgesConfig)
    suppressions: list[SuppressionConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _whole(self) -> Config:
        seen: set[str] = set()
        for i, role in enumerate(self.roles):
            if role.name in seen:
                raise ValueError(
                    f"roles.{i}.name: '{role.name}' is configured twice; role names must be unique"
                )
            seen.add(role.name)
            if role.max_duration < self.access.min_duration:
                raise ValueError(
                    f"roles.{i}.max_duration: {_human(role.max_duration)} is shorter than [access] min_duration"
                    f" ({_human(self.access.min_duration)})"
                )
        return self

    def warnings(self) -> list[str]:
        """What a valid configuration still cannot do (one line each): it runs, but uselessly."""
        out: list[str] = []
        slack = self.slack
        if not any(
            (slack.approvals_channel, slack.security_channel, slack.digest_channel, slack.alerts_channel)
        ):
            out.append("[slack]: no channel configured; nothing will be posted (digest, alerts, approvals)")
        if not slack.security_team:
            out.append(
                "[slack] security_team: empty; nobody may run /iam findings, scan or review break-glass"
            )
        if self.roles and not slack.approvals_channel:
            out.append(
                "[slack] approvals_channel: not set; access requests for the [[roles]] cannot be posted"
            )
        for i, role in enumerate(self.roles):
            if not role.approvers and not role.break_glass:
                out.append(f"roles[{i}] ({role.name}): no approvers; nobody can approve a request for it")
        return out

    def role(self, name: str) -> RoleConfig | None:
        return next((r for r in self.roles if r.name == name), None)


class Settings(BaseSettings):
    """Process settings. Environment variables: Slack's own names, everything else ``IAMWARDEN_*``."""

    model_config = SettingsConfigDict(env_prefix="IAMWARDEN_", extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN"))
    slack_app_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET")
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/", validation_alias=AliasChoices("IAMWARDEN_SLACK_API_URL")
    )
    host: str = Field(default="0.0.0.0", validation_alias=AliasChoices("IAMWARDEN_HOST"))  # noqa: S104
    port: int = Field(default=3000, ge=0, le=65535, validation_alias=AliasChoices("IAMWARDEN_PORT"))
    db: Path = Field(default=Path("iamwarden.db"), validation_alias=AliasChoices("IAMWARDEN_DB"))
    config_file: Path | None = Field(default=None, validation_alias=AliasChoices("IAMWARDEN_CONFIG"))
    log_level: str = Field(
        default="INFO",
        pattern="^(DEBUG|INFO|WARNING|ERROR)$",
        validation_alias=AliasChoices("IAMWARDEN_LOG_LEVEL"),
    )
    aws_region: str = Field(default="us-east-1", validation_alias=AliasChoices("IAMWARDEN_AWS_REGION"))
    # Test-only: pause a grant at this step (bot/access/killpoints.py) so a test can kill the process.
    test_pause_at: str | None = Field(default=None, validation_alias=AliasChoices("IAMWARDEN_TEST_PAUSE_AT"))
    # Loaded from the TOML file, never from an environment variable (IAMWARDEN_CONFIG is the file's path).
    _config: Config = PrivateAttr(default_factory=Config)

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, value: Config) -> None:
        self._config = value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("db")
    @classmethod
    def _db_directory_exists(cls, value: Path) -> Path:
        # A mistyped path must not silently create folders and an empty database.
        parent = value.expanduser().parent
        if not parent.is_dir():
            raise ValueError(f"directory {parent} does not exist")
        return value

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None


# Field name -> the variable a person sets, for one-line error messages.
ENV_NAMES = {
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_app_token": "SLACK_APP_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_api_url": "IAMWARDEN_SLACK_API_URL",
    "host": "IAMWARDEN_HOST",
    "port": "IAMWARDEN_PORT",
    "db": "IAMWARDEN_DB",
    "config_file": "IAMWARDEN_CONFIG",
    "log_level": "IAMWARDEN_LOG_LEVEL",
    "aws_region": "IAMWARDEN_AWS_REGION",
}


class SettingsError(Exception):
    """A setting is missing or invalid. The message is one line naming it and what is wrong."""


def _first_error(exc: ValidationError, where: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    name = ENV_NAMES.get(loc, loc) if where == "env" else f"{where}: {loc}"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        message = "is required"
    if not loc and message.startswith(("roles.", "[")):
        return f"{where}: {message}" if where != "env" else message  # a whole-config rule names its key
    return f"{name}: {message}"


def load_config(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"IAMWARDEN_CONFIG: file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"IAMWARDEN_CONFIG: {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except IsADirectoryError:
        raise SettingsError(f"IAMWARDEN_CONFIG: {path} is a directory; point it at the TOML file") from None
    except OSError as exc:
        raise SettingsError(f"IAMWARDEN_CONFIG: cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"IAMWARDEN_CONFIG: {path} is not valid TOML: {exc}") from None
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(_first_error(exc, str(path))) from None


def load_settings(*, require: tuple[str, ...] = (), **overrides: Any) -> Settings:
    """Read the environment (and the TOML file), validate, and check the settings ``require`` names.

    Raises SettingsError (one line) instead of a traceback.
    """
    config = overrides.pop("config", None)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_first_error(exc, "env")) from None
    if config is not None:
        settings.config = config if isinstance(config, Config) else Config.model_validate(config)
    elif settings.config_file is not None:
        settings.config = load_config(settings.config_file)
    for name in require:
        if getattr(settings, name) is None:
            raise SettingsError(f"{ENV_NAMES.get(name, name)}: is required")
    return settings
