"""Local stand-ins for AWS services moto does not implement, as pytest fixtures.

``access_analyzer``: a started ``AccessAnalyzerStub`` (ListAnalyzers, ListFindingsV2, AccessDenied on
demand) with ``AWS_ENDPOINT_URL_ACCESSANALYZER`` pointing boto3 at it; reset for every test.
Import the fixtures into a test module with ``from tests.aws_stubs import access_analyzer, analyzer_server``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.sandbox.access_analyzer import AccessAnalyzerStub

__all__ = ["AccessAnalyzerStub", "access_analyzer", "analyzer_server"]


@pytest.fixture(scope="session")
def analyzer_server() -> Iterator[AccessAnalyzerStub]:
    stub = AccessAnalyzerStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def access_analyzer(
    analyzer_server: AccessAnalyzerStub, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AccessAnalyzerStub]:
    analyzer_server.reset()
    for key, value in analyzer_server.env().items():
        monkeypatch.setenv(key, value)
    yield analyzer_server
