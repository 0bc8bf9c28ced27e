"""Fixtures of the unit tests that need a server: what bad input must leave behind."""

from __future__ import annotations

import pytest

from tests.scripts.util import audit_ok


@pytest.fixture
def unchanged(sched):
    """After the test body: nothing was submitted, no key was written, the invariant holds."""
    keys_before = sorted(sched.client.scan_iter(match=sched.keys.prefix + "*"))
    yield
    assert sched.counts()["submitted"] == 0
    assert sorted(sched.client.scan_iter(match=sched.keys.prefix + "*")) == keys_before
    audit_ok(sched)
