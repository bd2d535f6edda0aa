"""llmscope.units: the one place numbers, sizes and probabilities are written (and sizes read)."""

from __future__ import annotations

import pytest

from llmscope.errors import UsageError
from llmscope.units import fmt_bytes, fmt_count, fmt_int, fmt_prob, parse_size


@pytest.mark.parametrize(
    ("prob", "text"),
    [
        (None, "-"),
        (0.0, "0%"),  # cut by top-k / top-p: exactly zero, never "<0.001%"
        (1.0, "100.0%"),
        (0.412, "41.2%"),
        (0.0995, "10.0%"),
        (0.0994, "9.94%"),
        (0.0041, "0.41%"),
        (0.00095, "0.095%"),  # was "9.5e-04" beside "0.41%" in next-token
        (0.000995, "0.10%"),
        (0.00001, "0.001%"),
        (0.000004, "<0.001%"),
        (1e-30, "<0.001%"),
    ],
)
def test_fmt_prob_is_always_a_percentage(prob, text):
    assert fmt_prob(prob) == text


def test_fmt_prob_never_writes_an_exponent():
    for exponent in range(1, 40):
        assert "e" not in fmt_prob(10.0**-exponent)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (0, "0 B"), (1023, "1,023 B"), (1024, "1.00 KiB"), (1536 * 2**20, "1.50 GiB"), (2**50, "1,024.00 TiB")],
)
def test_fmt_bytes(value, text):
    assert fmt_bytes(value) == text


@pytest.mark.parametrize(("value", "text"), [(None, "-"), (999, "999"), (124_439_808, "124M"), (3_821_079_552, "3.82B")])
def test_fmt_count(value, text):
    assert fmt_count(value) == text


def test_fmt_int():
    assert fmt_int(32768) == "32,768"
    assert fmt_int(None) == "-"


def test_parse_size_reads_what_fmt_bytes_writes_units_of():
    assert parse_size("1.5GiB") == 1536 * 2**20
    assert parse_size("80GB") == 80 * 10**9
    with pytest.raises(UsageError):
        parse_size("lots")
