"""subscription-activator's rule, pure: a closed-won opportunity becomes subscription phases.

One phase per line: it starts on the line's start date and runs its term; a recurring line
bills quantity x unit price every billing period, a ONE_TIME line once. The contract value
must be what those phases will bill, to the cent.
"""

from __future__ import annotations

from decimal import Decimal

from finsync.contract.events import OpportunityClosed
from finsync.domain.accounting import check_money, fmt
from finsync.domain.billing_schedule import line_value, phase_end
from finsync.errors import InvalidEvent
from finsync.ports.billing import Phase


def phases(opportunity: OpportunityClosed) -> tuple[Phase, ...]:
    what = f"opportunity {opportunity.opportunity_id}"
    currency = opportunity.currency
    check_money(currency, {"total_contract_value": opportunity.total_contract_value})
    if not opportunity.lines:
        raise InvalidEvent(f"{what} has no lines")
    if len({line.line_id for line in opportunity.lines}) != len(opportunity.lines):
        raise InvalidEvent(f"{what} has duplicate line ids")
    value = Decimal(0)
    for line in opportunity.lines:
        about = f"{what} line {line.line_id}"
        if line.quantity <= 0:
            raise InvalidEvent(
                f"{about} has quantity {line.quantity.normalize():f}; it must be > 0"
            )
        if line.unit_price < 0:
            raise InvalidEvent(f"{about} has a negative unit price")
        if line.term_months <= 0:
            raise InvalidEvent(f"{about} has a term of {line.term_months} months; it must be > 0")
        billed = line_value(
            line.quantity, line.unit_price, line.billing_period, line.term_months, currency
        )
        if billed is None:
            raise InvalidEvent(
                f"{about}: a term of {line.term_months} months is not a whole number of "
                f"{line.billing_period.value} billing periods"
            )
        value += billed
    if value != opportunity.total_contract_value:
        raise InvalidEvent(
            f"{what} lines add up to {fmt(value, currency)} over their terms, but its "
            f"total_contract_value is {fmt(opportunity.total_contract_value, currency)}"
        )
    return tuple(
        Phase(
            line_id=line.line_id,
            sku=line.sku,
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            billing_period=line.billing_period,
            start_date=line.start_date,
            end_date=phase_end(line.start_date, line.billing_period, line.term_months),
        )
        for line in opportunity.lines
    )
