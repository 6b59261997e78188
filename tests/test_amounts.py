"""Amounts: decimal strings on the wire, base units inside; swap requests checked by field."""

from __future__ import annotations

import random

import pytest

from orderengine.amounts import MAX_BASE_UNITS, AmountError, format_amount, parse_amount
from orderengine.errors import FieldError
from orderengine.swaps import DEFAULT_SLIPPAGE_BPS, MAX_SLIPPAGE_BPS, parse_swap


@pytest.mark.parametrize(
    ("text", "decimals", "units"),
    [
        ("10", 6, 10_000_000),
        ("0.25", 6, 250_000),
        ("1.000000001", 9, 1_000_000_001),
        ("1.5", 9, 1_500_000_000),
        ("0.00001", 5, 1),
        ("7", 0, 7),
    ],
)
def test_amount_round_trips_between_text_and_base_units(
    text: str, decimals: int, units: int
) -> None:
    assert parse_amount(text, decimals) == units
    assert format_amount(units, decimals) == text


@pytest.mark.parametrize(
    ("text", "decimals", "units"),
    [
        ("1.500000000000", 6, 1_500_000),  # zeros beyond the token's decimals say nothing
        ("2.0", 0, 2),
        ("007", 6, 7_000_000),
        (" 10 ", 6, 10_000_000),  # surrounding whitespace is ignored
    ],
)
def test_harmless_spellings_are_accepted(text: str, decimals: int, units: int) -> None:
    assert parse_amount(text, decimals) == units


def test_formatting_drops_trailing_zeros() -> None:
    assert format_amount(1_500_000_000, 9) == "1.5"
    assert format_amount(1_000_000, 6) == "1"
    assert format_amount(0, 6) == "0"


def test_random_base_units_survive_format_then_parse() -> None:
    rng = random.Random(20260101)
    for _ in range(2_000):
        decimals = rng.choice([0, 5, 6, 9])
        units = rng.randint(1, MAX_BASE_UNITS)
        assert parse_amount(format_amount(units, decimals), decimals) == units


@pytest.mark.parametrize(
    ("text", "decimals"),
    [
        ("1.0000001", 6),  # 7 significant decimal places for a 6-decimal token
        ("0.000001", 5),
        ("1.5", 0),
    ],
)
def test_more_decimal_places_than_the_token_has_are_rejected(text: str, decimals: int) -> None:
    with pytest.raises(AmountError, match="decimal places"):
        parse_amount(text, decimals)


@pytest.mark.parametrize("text", ["0", "0.0", "0.000000"])
def test_zero_is_rejected(text: str) -> None:
    with pytest.raises(AmountError, match="greater than zero"):
        parse_amount(text, 6)


@pytest.mark.parametrize(
    "text",
    [
        "-1",
        "+5",
        "abc",
        "1e5",
        "",
        " ",
        "1,5",
        ".5",  # the regex wants a whole part: "0.5"
        "5.",
        "1.2.3",
        "0x10",
        "1 000",
        "NaN",
        "inf",
    ],
)
def test_anything_but_a_plain_positive_decimal_is_rejected(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text, 6)


def test_the_largest_u64_amount_is_accepted_and_one_more_is_not() -> None:
    # SPL amounts are u64: 2**64 - 1 = 18_446_744_073_709_551_615 base units
    # = 18446744073.709551615 SOL; 2**63 and past it are amounts like others.
    assert MAX_BASE_UNITS == 2**64 - 1
    assert parse_amount("18446744073.709551615", 9) == 2**64 - 1
    assert parse_amount("9223372036.854775808", 9) == 2**63
    with pytest.raises(AmountError, match=r"too large: at most 18446744073\.709551615$"):
        parse_amount("18446744073.709551616", 9)
    with pytest.raises(AmountError, match=r"too large: at most 18446744073709551615$"):
        parse_amount("18446744073709551616", 0)
    with pytest.raises(AmountError, match=r"too large: at most 18446744073709551615$"):
        parse_amount("99999999999999999999", 0)


def test_overlong_strings_are_rejected_even_when_their_value_is_small() -> None:
    assert parse_amount("0" * 38 + "10", 6) == 10_000_000  # 40 characters
    with pytest.raises(AmountError, match="40 characters"):
        parse_amount("0" * 39 + "10", 6)  # 41 characters
    with pytest.raises(AmountError, match="40 characters"):
        parse_amount("1" * 10_000, 6)


@pytest.mark.parametrize("text", ["\u0661\u0660", "\uff11\uff10"])  # Arabic-Indic, fullwidth "10"
def test_non_ascii_digits_are_rejected(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text, 6)


def test_format_keeps_the_sign_of_negative_units() -> None:
    assert format_amount(-1_500_000, 6) == "-1.5"


# -- parse_swap ---------------------------------------------------------------


def test_a_valid_swap_is_parsed_into_symbols_and_base_units() -> None:
    swap = parse_swap("SOL", "USDC", "1.5", 100)
    assert (swap.input_token, swap.output_token, swap.amount_in, swap.slippage_bps) == (
        "SOL",
        "USDC",
        1_500_000_000,
        100,
    )


def test_token_symbols_are_case_insensitive() -> None:
    swap = parse_swap("sol", " usdc ", "2", 0)
    assert (swap.input_token, swap.output_token) == ("SOL", "USDC")


def test_amount_is_parsed_with_the_input_tokens_decimals() -> None:
    assert parse_swap("USDC", "SOL", "1", 0).amount_in == 1_000_000  # 6 decimals
    assert parse_swap("BONK", "SOL", "1", 0).amount_in == 100_000  # 5 decimals


@pytest.mark.parametrize(
    ("input_token", "output_token", "field"),
    [
        ("DOGE", "USDC", "input_token"),
        ("", "USDC", "input_token"),
        ("SOL", "DOGE", "output_token"),
        ("SOL", "", "output_token"),
        ("SOL", "SOL", "output_token"),
        ("SOL", "sol", "output_token"),
        ("DOGE", "DOGE", "input_token"),  # the first bad field is named
    ],
)
def test_bad_tokens_name_their_field(input_token: str, output_token: str, field: str) -> None:
    with pytest.raises(FieldError) as raised:
        parse_swap(input_token, output_token, "1", 0)
    assert raised.value.field == field


def test_same_token_on_both_sides_says_they_must_differ() -> None:
    with pytest.raises(FieldError, match="must differ"):
        parse_swap("USDC", "USDC", "1", 0)


@pytest.mark.parametrize(
    "amount",
    ["", " ", "0", "-1", "abc", "1e5", "1,5", ".5", "1.0000001", "1" * 41, "99999999999999999999"],
)
def test_bad_amounts_name_the_amount_field(amount: str) -> None:
    with pytest.raises(FieldError) as raised:
        parse_swap("USDC", "SOL", amount, 0)
    assert raised.value.field == "amount"


def test_unset_slippage_means_the_default() -> None:
    assert parse_swap("SOL", "USDC", "1", 0).slippage_bps == DEFAULT_SLIPPAGE_BPS == 50


@pytest.mark.parametrize("slippage", [1, 50, MAX_SLIPPAGE_BPS])
def test_slippage_within_bounds_is_kept(slippage: int) -> None:
    assert parse_swap("SOL", "USDC", "1", slippage).slippage_bps == slippage


@pytest.mark.parametrize("slippage", [MAX_SLIPPAGE_BPS + 1, 10_000, -1])
def test_slippage_out_of_bounds_names_slippage_bps(slippage: int) -> None:
    with pytest.raises(FieldError) as raised:
        parse_swap("SOL", "USDC", "1", slippage)
    assert raised.value.field == "slippage_bps"
