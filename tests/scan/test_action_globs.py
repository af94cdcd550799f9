"""The statement filter's Action matcher (``bot.checks.catalog._ActionGlobs``) answers as the one
regular expression over every glob it replaced."""

from __future__ import annotations

import itertools
import re

from bot.checks.catalog import ESCALATION_ACTIONS, _ActionGlobs, _glob_source

PATTERNS = (
    "iam:PassRole",
    " IAM:passrole ",
    "iam:*",
    "iam:Create*",
    "iam:?ttachRolePolicy",
    "*",
    "s3:GetObject",
    "sts:Assume*",
    "lambda:Create+Function",
    "ec2:Run.nstances",
    "*:*",
    "ssm:*Command",
    "",
)
ACTIONS = (
    *ESCALATION_ACTIONS,
    "iam:createuser",
    "s3:getobject",
    "ec2:runxnstances",
    "lambda:create+function",
)


def _one_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(_glob_source(p) for p in patterns) or "(?!)")


def test_the_action_matcher_answers_as_one_regular_expression_over_every_glob():
    for size in (0, 1, 2, 3):
        for patterns in itertools.combinations(PATTERNS, size):
            globs, regex = _ActionGlobs(patterns), _one_regex(patterns)
            for action in ACTIONS:
                assert globs.fullmatch(action) == (regex.fullmatch(action) is not None), (patterns, action)
