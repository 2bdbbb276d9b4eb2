"""account-sync's rules, pure: when a CRM account is valid, and what of it the ERP and billing
hold."""

from __future__ import annotations

from dataclasses import dataclass

from finsync.contract.events import AccountUpserted
from finsync.domain.accounting import MINOR_UNITS
from finsync.domain.countries import COUNTRIES
from finsync.errors import InvalidEvent
from finsync.ports.crossref import AccountLink, MatchRule

from .matching import normalize_name, normalize_tax_id


def validate(account: AccountUpserted) -> None:
    what = f"account {account.account_id}"
    if not account.name.strip():
        raise InvalidEvent(f"{what} has no name")
    if not normalize_name(account.name):
        raise InvalidEvent(f"{what} has a name with no letters or digits: {account.name!r}")
    if account.country not in COUNTRIES:
        raise InvalidEvent(
            f"{what} has country {account.country!r}, not an ISO-3166 alpha-2 code such as DE"
        )
    if account.currency not in MINOR_UNITS:
        raise InvalidEvent(f"{what} has unknown currency {account.currency!r}")
    if account.version < 1:
        raise InvalidEvent(f"{what} has version {account.version}; versions start at 1")
    if account.parent_account_id == account.account_id:
        raise InvalidEvent(f"{what} is its own parent")


def link_for(
    account: AccountUpserted,
    erp_customer_id: str,
    billing_account_id: str,
    match_rule: MatchRule | None = None,
    matched_account_id: str | None = None,
) -> AccountLink:
    """The cross-reference row for this version of the account."""
    return AccountLink(
        account_id=account.account_id,
        erp_customer_id=erp_customer_id,
        billing_account_id=billing_account_id,
        version=account.version,
        name=account.name,
        normalized_name=normalize_name(account.name),
        country=account.country,
        currency=account.currency,
        legal_entity=account.legal_entity,
        tax_id=normalize_tax_id(account.tax_id),
        email_domain=account.email_domain,
        parent_account_id=account.parent_account_id,
        match_rule=match_rule,
        matched_account_id=matched_account_id,
    )


def match_rule(existing: AccountLink, account: AccountUpserted) -> MatchRule:
    """Which rule made `account` a duplicate of `existing`."""
    tax_id = normalize_tax_id(account.tax_id)
    same_tax_id = tax_id is not None and existing.tax_id == tax_id
    return MatchRule.TAX_ID if same_tax_id else MatchRule.NAME_COUNTRY


def changed(link: AccountLink, new: AccountLink) -> bool:
    """Whether a newer version changes anything the ERP or billing hold."""
    fields = (
        "name",
        "country",
        "currency",
        "legal_entity",
        "tax_id",
        "email_domain",
        "parent_account_id",
    )
    return any(getattr(link, f) != getattr(new, f) for f in fields)


# What open business is bound to: an invoice or subscription cannot change currency or company.
BOUND_FIELDS = (("currency", "currency"), ("legal_entity", "legal entity"))


@dataclass(frozen=True)
class OpenBusiness:
    """What is open under an account: invoices with an amount open, subscriptions not ended."""

    invoices: int
    subscriptions: int

    def __bool__(self) -> bool:
        return self.invoices > 0 or self.subscriptions > 0

    def __str__(self) -> str:
        parts = [
            f"{n} {what}{'' if n == 1 else 's'}"
            for n, what in (
                (self.invoices, "open invoice"),
                (self.subscriptions, "active subscription"),
            )
            if n
        ]
        return ", ".join(parts) or "nothing open"


def moves(link: AccountLink, new: AccountLink) -> list[str]:
    """What a newer version moves that open business is bound to, e.g. 'currency from EUR to
    USD'; empty when it moves nothing of the kind."""
    return [
        f"{label} from {getattr(link, field)} to {getattr(new, field)}"
        for field, label in BOUND_FIELDS
        if getattr(link, field) != getattr(new, field)
    ]


def refusal(link: AccountLink, new: AccountLink, business: OpenBusiness) -> str | None:
    """Why the version `new` may not be applied over `link`, None if it may: no version moves
    an account's currency or legal entity while business is open under it. Ids and codes
    only: the reason is kept with the dead letter."""
    moved = moves(link, new)
    if not moved or not business:
        return None
    whose = "its customer has" if link.owns_customer else "it has"
    return (
        f"account {new.account_id} v{new.version} changes its {' and '.join(moved)} while "
        f"{whose} open business: {business}. The whole version is refused and v{link.version} "
        "stays in force; close or move that business first, or send a version without the change"
    )
