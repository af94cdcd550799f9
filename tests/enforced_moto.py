"""A moto server in its own process, for proving the shipped policy documents under IAM enforcement.

moto keeps its enforcement switch (``settings.INITIAL_NO_AUTH_ACTION_COUNT``) and its backends
process-wide, so enforcing inside the test process would deny every other test's calls. This
process serves one ``127.0.0.1`` port (printed as the first line of stdout) until its stdin closes.
``POST /moto-api/reset-auth`` with ``0`` turns enforcement on, ``inf`` off (moto's own endpoint).

Two gaps in moto 5.2.5 are closed here so it judges a policy as AWS does:
- user operations (ListAccessKeys, UpdateAccessKey, DeleteLoginProfile) are checked against the
  resource ``*`` instead of the user's ARN, so a policy scoped to ``user/*`` could never pass;
- some operations are authorized by AWS as another action (``sqs:DeleteMessageBatch`` as
  ``sqs:DeleteMessage``, ``ListFindingsV2`` as ``access-analyzer:ListFindings``); moto asks for the
  operation's own name, which no IAM policy can grant.

Run: ``python -m tests.enforced_moto``.
"""

from __future__ import annotations

import sys

# AWS authorizes these operations as another action.
AUTHORIZED_AS = {
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "access-analyzer:ListFindingsV2": "access-analyzer:ListFindings",
}


def _patch_moto() -> None:
    from moto.iam import access_control
    from moto.iam.responses import IamResponse

    original_resource = IamResponse._determine_resource

    def determine_resource(self) -> str:  # noqa: ANN001
        if "RoleName" not in self.data and "UserName" in self.data:
            # AWS evaluates the user's ARN whether or not the user exists (a probe for a missing
            # user answers NoSuchEntity only when the policy allows it).
            return f"arn:aws:iam::{self.current_account}:user/{self.data['UserName'][0]}"
        return original_resource(self)

    IamResponse._determine_resource = determine_resource

    original_check = access_control.IAMRequest.check_action_permitted

    def check_action_permitted(self, resource: str) -> None:  # noqa: ANN001
        self._action = AUTHORIZED_AS.get(self._action, self._action)
        return original_check(self, resource)

    access_control.IAMRequest.check_action_permitted = check_action_permitted


def main() -> None:
    import os

    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")
    _patch_moto()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    sys.stdout.write(f"http://{host}:{port}\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()  # until the test process closes our stdin (or dies)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
