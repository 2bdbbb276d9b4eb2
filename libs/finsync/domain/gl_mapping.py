"""GL mapping, pure: which revenue, deferred-revenue and tax accounts an invoice line posts to.

Revenue rules match a line's SKU: a rule for the SKU itself wins, then the family rule of the
longest prefix (`PLAT-AN-*` before `PLAT-*`), then the default accounts 4000 / 2300. Tax rules
match the legal entity and the line's tax rate; a line without a rate, or with no rule for its
entity and rate, goes to 2200. Only active rules match: a rule that postings used is kept,
deactivated, when it is retired, so every posting can still name the rule it used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from finsync.domain.accounting import DEFERRED_REVENUE, REVENUE, TAX_PAYABLE

FAMILY = "*"  # a family pattern is a SKU prefix followed by it: `PLAT-*`


@dataclass(frozen=True)
class RevenueRule:
    rule_id: str
    sku: str  # a SKU, or a family pattern `PLAT-*`
    revenue_account: str
    deferred_account: str
    active: bool = True
    description: str = ""

    @property
    def prefix(self) -> str | None:
        """The SKU prefix a family rule matches; None for a rule of one SKU."""
        return self.sku[: -len(FAMILY)] if self.sku.endswith(FAMILY) else None

    @property
    def shape(self) -> tuple[str, ...]:
        """What postings would see change if it changed."""
        return ("revenue", self.sku, self.revenue_account, self.deferred_account)


@dataclass(frozen=True)
class TaxRule:
    rule_id: str
    legal_entity: str
    rate: Decimal  # 0.10 for 10 %
    tax_account: str
    active: bool = True
    description: str = ""

    @property
    def shape(self) -> tuple[str, ...]:
        return ("tax", self.legal_entity, f"{self.rate.normalize():f}", self.tax_account)


Rule = RevenueRule | TaxRule


@dataclass(frozen=True)
class RevenueAccounts:
    """Where a line's revenue goes: `revenue` at once, or `deferred` while it is scheduled."""

    revenue: str
    deferred: str
    rule: str | None = None  # the rule that chose them; None: the defaults


@dataclass(frozen=True)
class TaxAccount:
    account: str
    rule: str | None = None  # None: the default


DEFAULT_REVENUE = RevenueAccounts(REVENUE, DEFERRED_REVENUE)
DEFAULT_TAX = TaxAccount(TAX_PAYABLE)


class GlMapping:
    """The active rules, indexed for lookups per line."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._skus: dict[str, RevenueRule] = {}
        families: list[tuple[str, RevenueRule]] = []
        self._taxes: dict[tuple[str, Decimal], TaxRule] = {}
        for r in rules:
            if not r.active:
                continue
            if isinstance(r, TaxRule):
                self._taxes[(r.legal_entity, r.rate)] = r  # Decimal: 0.1 and 0.10 are one key
            elif r.prefix is None:
                self._skus[r.sku] = r
            else:
                families.append((r.prefix, r))
        # Longest prefix first: the most specific family that matches wins.
        self._families = sorted(families, key=lambda f: (-len(f[0]), f[0]))

    def revenue(self, sku: str) -> RevenueAccounts:
        rule = self._skus.get(sku) or next(
            (r for prefix, r in self._families if sku.startswith(prefix)), None
        )
        if rule is None:
            return DEFAULT_REVENUE
        return RevenueAccounts(rule.revenue_account, rule.deferred_account, rule.rule_id)

    def tax(self, legal_entity: str, rate: Decimal | None) -> TaxAccount:
        rule = None if rate is None else self._taxes.get((legal_entity, rate))
        return DEFAULT_TAX if rule is None else TaxAccount(rule.tax_account, rule.rule_id)
