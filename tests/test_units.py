"""One parser for counts like 20M (token budgets, scaling-law inputs) and one formatter for tables."""

import pytest

from llmlab.errors import ConfigError
from llmlab.units import human_count, parse_count, parse_positive_int


@pytest.mark.parametrize("text, value", [
    ("20M", 20e6), ("2.5m", 2.5e6), ("200k", 200e3), ("70B", 70e9), ("70G", 70e9), ("1.4T", 1.4e12),
    ("5.76e23", 5.76e23), ("1e6", 1e6), ("1_000_000", 1e6), ("1,000", 1e3), (" 3 ", 3.0), (125, 125.0),
])
def test_every_command_reads_counts_the_same_way(text, value):
    assert parse_count(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["lots", "", "M", "1.2.3", "5 M tokens", True])
def test_a_count_that_is_not_a_number_is_a_one_line_error(bad):
    with pytest.raises(ConfigError, match="invalid"):
        parse_count(bad)


def test_token_budgets_are_positive_whole_numbers_with_a_limit():
    assert parse_positive_int("2.5M", "token count") == 2_500_000
    for bad, message in (("-5", "positive"), ("0", "positive"), ("1e-3", "positive"), ("2T", "too large")):
        with pytest.raises(ConfigError, match=message):
            parse_positive_int(bad, "token count")


def test_the_tinyworld_and_scaling_names_are_the_one_parser():
    from llmlab.data.tinyworld import parse_token_count
    from llmlab.eval.scaling import parse_count as scaling_parse_count

    assert scaling_parse_count is parse_count
    assert parse_token_count("20M") == parse_positive_int("20M", "token count") == 20_000_000


def test_human_count():
    assert [human_count(x) for x in (512, 1234, 125e6, 1.3e9, 1.4e12, 5.76e23)] == \
        ["512", "1.23K", "125M", "1.3B", "1.4T", "5.76e+08P"]


def test_format_cell_is_one_formatter_for_terminal_and_html_tables():
    from llmlab.cli.common import format_cell as terminal
    from llmlab.eval.report import table
    from llmlab.units import format_cell

    assert terminal is format_cell
    assert [format_cell(v) for v in (0.5, 0.0, 1e-4, 2.5e6, 12345, 42, "a")] == \
        ["0.5000", "0.0000", "1.000e-04", "2.500e+06", "12,345", "42", "a"]
    assert "<td>12,345</td>" in table([[12345]], ["n"])
