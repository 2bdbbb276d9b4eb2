from decimal import Decimal

import pytest

from finsync.settings import Settings


def test_the_write_off_tolerance_defaults_to_five_cents_and_is_configurable():
    assert Settings.from_env({}).payment_tolerance == Decimal("0.05")
    tolerance = Settings.from_env({"FINSYNC_PAYMENT_TOLERANCE": "1.00"}).payment_tolerance
    assert tolerance == Decimal("1.00")


@pytest.mark.parametrize("value", ["abc", "-0.01", "NaN", "Infinity"])
def test_a_tolerance_that_is_not_an_amount_stops_the_service_with_a_clear_message(value):
    with pytest.raises(SystemExit, match="FINSYNC_PAYMENT_TOLERANCE"):
        Settings.from_env({"FINSYNC_PAYMENT_TOLERANCE": value})
