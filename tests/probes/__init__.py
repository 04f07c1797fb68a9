"""Tests of the probes; the shared tester's assertions explain themselves on failure."""

import pytest

pytest.register_assert_rewrite("tests.probes.tester")
