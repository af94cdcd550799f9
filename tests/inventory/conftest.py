"""Fixtures of the inventory tests."""

from __future__ import annotations

import boto3
import pytest


@pytest.fixture
def iam(aws):
    return boto3.client("iam")
