from decimal import Decimal

import pytest

from finsync.settings import Settings


def test_the_write_off_tolerance_defaults_per_currency_and_is_configurable():
    defaults = Settings.from_env({}).payment_tolerances
    assert defaults.amount("EUR", Decimal(100)) == Decimal("0.05")
    assert defaults.amount("JPY", Decimal(10000)) == Decimal(5)
    tolerances = Settings.from_env({"FINSYNC_PAYMENT_TOLERANCE": "1.00"}).payment_tolerances
    assert tolerances.amount("EUR", Decimal(100)) == tolerances.amount("JPY", Decimal(100)) == 1


@pytest.mark.parametrize("value", ["abc", "-0.01", "NaN", "Infinity"])
def test_a_tolerance_that_is_not_an_amount_stops_the_service_with_a_clear_message(value):
    with pytest.raises(SystemExit, match="FINSYNC_PAYMENT_TOLERANCE"):
        Settings.from_env({"FINSYNC_PAYMENT_TOLERANCE": value})


def test_lost_disputes_reopen_by_default_and_a_policy_is_checked_at_start_up():
    assert Settings.from_env({}).lost_disputes == "reopen"
    assert Settings.from_env({"FINSYNC_LOST_DISPUTES": "Write-Off"}).lost_disputes == "write-off"
    with pytest.raises(SystemExit, match="FINSYNC_LOST_DISPUTES='forgive' is none of reopen"):
        Settings.from_env({"FINSYNC_LOST_DISPUTES": "forgive"})


def test_the_replay_loop_guard_defaults_to_three_failed_replays():
    assert Settings.from_env({}).replay_max == 3
    assert Settings.from_env({"FINSYNC_REPLAY_MAX": "5"}).replay_max == 5
    with pytest.raises(SystemExit, match="FINSYNC_REPLAY_MAX='many' is not a whole number"):
        Settings.from_env({"FINSYNC_REPLAY_MAX": "many"})
