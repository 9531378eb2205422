"""Built-in price lists, price files and ``--price`` flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.sim.profiles import BUILTIN_HARDWARE
from workers.tune.prices import (
    BUILTIN_PRICE_LISTS,
    PriceError,
    builtin_price_list,
    load_price_file,
    parse_price_flag,
    require_prices,
    resolve_prices,
)


@pytest.mark.parametrize("price_list", BUILTIN_PRICE_LISTS, ids=lambda p: p.name)
def test_builtin_lists_price_every_builtin_gpu_and_cite_a_source(price_list) -> None:  # type: ignore[no-untyped-def]
    assert set(price_list.by_hardware()) == {h.name for h in BUILTIN_HARDWARE}
    assert price_list.source.startswith("https://") and price_list.read_on
    assert all(p.source for p in price_list.prices)


@pytest.mark.parametrize(
    ("hardware", "instance_usd"),
    [("h100-80gb", 55.04), ("a100-80gb", 27.44705), ("a100-40gb", 21.957642)],
)
def test_aws_per_gpu_prices_are_the_8_gpu_instance_price_over_8(
    hardware: str, instance_usd: float
) -> None:
    per_gpu = builtin_price_list("aws").by_hardware()[hardware]
    assert per_gpu == pytest.approx(instance_usd / 8, abs=5e-5)
    assert f"${instance_usd}/h" in next(
        p.source for p in builtin_price_list("aws").prices if p.hardware == hardware
    )


@pytest.mark.parametrize(
    ("flag", "parsed"), [("h100-80gb=2.5", ("h100-80gb", 2.5)), ("x=1e-1", ("x", 0.1))]
)
def test_price_flags(flag: str, parsed: tuple[str, float]) -> None:
    assert parse_price_flag(flag) == parsed


@pytest.mark.parametrize("flag", ["h100", "=2", "h100=", "h100=abc", "h100=0", "h100=-1", "h=inf"])
def test_bad_price_flags(flag: str) -> None:
    with pytest.raises(PriceError, match="expected GPU=USD_PER_GPU_HOUR"):
        parse_price_flag(flag)


def test_flags_override_the_list() -> None:
    prices = resolve_prices(builtin_price_list("lambda"), ["h100-80gb=1.5", "mine=0.5"])
    assert prices["h100-80gb"] == 1.5 and prices["mine"] == 0.5 and prices["a100-40gb"] == 1.99


def test_price_files(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("name: mine\nprices:\n  - {hardware: h100-80gb, usd_per_gpu_hour: 2.1}\n")
    assert load_price_file(good).by_hardware() == {"h100-80gb": 2.1}
    typo = tmp_path / "typo.json"
    typo.write_text('{"name": "x", "prices": [{"hardware": "h", "usd_per_hour": 2}]}')
    with pytest.raises(PriceError, match="usd_per_hour"):
        load_price_file(typo)


def test_unknown_list_and_missing_prices_are_errors() -> None:
    with pytest.raises(PriceError, match="built in: aws, lambda"):
        builtin_price_list("azure")
    with pytest.raises(PriceError, match="no price for b200: add --price b200=USD"):
        require_prices({"h100-80gb": 1.0}, ["h100-80gb", "b200"])
