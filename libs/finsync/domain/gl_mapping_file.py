"""A GL mapping file, pure: read from TOML's data, checked against the chart of accounts and the
rules postings used, and turned into the changes a load makes.

The file is the whole mapping. Its rules are upserted by id; a rule it no longer lists is
deleted if no posting used it, else deactivated, so history stays explainable; for the same
reason a rule postings used keeps its match and accounts (retire it, add one under a new id).
The file may add accounts to the chart. Problems are reported together (those of the file
itself first, then those against the chart and the rules), and a file with any changes
nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation

from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CASH,
    CUSTOMER_CREDIT,
    DEFERRED_REVENUE,
    PAYMENT_FEES,
    TAX_PAYABLE,
    UNAPPLIED_CASH,
    WRITE_OFF,
)
from finsync.domain.gl_mapping import FAMILY, RevenueRule, Rule, TaxRule

ACCOUNT_KINDS = ("ASSET", "LIABILITY", "EQUITY", "REVENUE", "EXPENSE")
# Accounts other documents own (cash, AR, unapplied cash, customer credit, fees, write-offs):
# no rule names them.
CONTROLLED = frozenset(
    {CASH, ACCOUNTS_RECEIVABLE, UNAPPLIED_CASH, CUSTOMER_CREDIT, PAYMENT_FEES, WRITE_OFF}
)
RATE_DECIMALS = 4  # the contract carries tax rates at scale 4
SECTIONS = {
    "account": {"code", "name", "kind"},
    "revenue": {"id", "sku", "revenue_account", "deferred_account", "active", "description"},
    "tax": {"id", "legal_entity", "rate", "tax_account", "active", "description"},
}


class MappingInvalid(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Account:
    code: str
    name: str
    kind: str


@dataclass(frozen=True)
class MappingFile:
    accounts: tuple[Account, ...] = ()
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Existing:
    """A rule the ERP has, and whether any posting used it."""

    rule: Rule
    used: bool


@dataclass(frozen=True)
class Plan:
    """What loading the file changes."""

    accounts_added: tuple[Account, ...] = ()
    accounts_renamed: tuple[Account, ...] = ()
    added: tuple[Rule, ...] = ()
    changed: tuple[Rule, ...] = ()
    deactivated: tuple[Rule, ...] = ()  # no longer in the file, but postings used them
    deleted: tuple[str, ...] = ()  # no longer in the file, never used
    unchanged: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        return bool(
            self.accounts_added
            or self.accounts_renamed
            or self.added
            or self.changed
            or self.deactivated
            or self.deleted
        )


class _Reader:
    """Reads one table of the file, collecting what is wrong with it."""

    def __init__(self, table: object, where: str, errors: list[str]) -> None:
        self.where, self.errors = where, errors
        self.table: Mapping[str, object] = table if isinstance(table, Mapping) else {}
        if not isinstance(table, Mapping):
            self.fail("is not a table")

    def only(self, keys: set[str]) -> None:
        for key in sorted(set(self.table) - keys):
            self.fail(f"has an unknown key {key!r} (expected {', '.join(sorted(keys))})")

    def fail(self, problem: str) -> None:
        self.errors.append(f"{self.where} {problem}")

    def text(self, key: str, code: bool = False) -> str:
        value = self.table.get(key)
        if code and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # `code = 4010` means the account "4010"
        if not isinstance(value, str) or not value.strip():
            self.fail(f"needs {key} as text" if value is None else f"{key} must be text")
            return ""
        return value.strip()

    def flag(self, key: str) -> bool:
        value = self.table.get(key, True)
        if not isinstance(value, bool):
            self.fail(f"{key} must be true or false")
            return True
        return value

    def rate(self, key: str) -> Decimal:
        value = self.table.get(key)
        try:
            if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
                raise InvalidOperation
            rate = Decimal(str(value) if isinstance(value, float) else value)
            ok = rate.is_finite() and 0 <= rate < 1
        except InvalidOperation:
            ok = False
        if not ok:
            shown = repr(value) if isinstance(value, str) else str(value).lower()
            self.fail(f"{key} {shown} is not a tax rate: a fraction from 0 to below 1, e.g. 0.10")
            return Decimal(0)
        if rate != rate.quantize(Decimal(1).scaleb(-RATE_DECIMALS)):
            self.fail(f"{key} {value} has more than {RATE_DECIMALS} decimals")
        return rate


def parse(doc: Mapping[str, object]) -> MappingFile:
    """The file's accounts and rules, from what tomllib read; MappingInvalid lists every
    problem."""
    errors: list[str] = []
    for key in sorted(set(doc) - set(SECTIONS)):
        errors.append(f"unknown section {key!r} (expected [[account]], [[revenue]], [[tax]])")
    tables: dict[str, list[object]] = {}
    for section in SECTIONS:
        value = doc.get(section, [])
        if not isinstance(value, list):
            errors.append(f"{section} must be an array of tables: [[{section}]]")
            value = []
        tables[section] = value
    accounts = [_account(t, n, errors) for n, t in enumerate(tables["account"], 1)]
    rules: list[Rule] = [_revenue(t, n, errors) for n, t in enumerate(tables["revenue"], 1)]
    rules += [_tax(t, n, errors) for n, t in enumerate(tables["tax"], 1)]
    errors += _duplicates(accounts, rules)
    if errors:
        raise MappingInvalid(errors)
    return MappingFile(tuple(accounts), tuple(rules))


def _account(table: object, n: int, errors: list[str]) -> Account:
    r = _Reader(table, f"account {n}", errors)
    code = r.text("code", code=True)
    r.where = f"account {code or n}"
    r.only(SECTIONS["account"])
    name, kind = r.text("name"), r.text("kind").upper()
    if kind and kind not in ACCOUNT_KINDS:
        r.fail(f"kind {kind!r} is none of {', '.join(ACCOUNT_KINDS)}")
    return Account(code, name, kind)


def _rule_reader(table: object, what: str, n: int, errors: list[str]) -> tuple[_Reader, str]:
    r = _Reader(table, f"{what} rule {n}", errors)
    rule_id = r.text("id")
    if rule_id:
        r.where = f"{what} rule {rule_id!r}"
        if len(rule_id) > 100 or any(c.isspace() for c in rule_id):
            r.fail("id must be at most 100 characters, without spaces")
    r.only(SECTIONS[what])
    return r, rule_id


def _revenue(table: object, n: int, errors: list[str]) -> RevenueRule:
    r, rule_id = _rule_reader(table, "revenue", n, errors)
    sku = r.text("sku")
    if FAMILY in sku[:-1] or sku == FAMILY:
        r.fail(f"sku {sku!r}: a family is a SKU prefix and one * at its end, e.g. PLAT-*")
    return RevenueRule(
        rule_id,
        sku,
        r.text("revenue_account", code=True),
        r.text("deferred_account", code=True),
        r.flag("active"),
        str(r.table.get("description", "")),
    )


def _tax(table: object, n: int, errors: list[str]) -> TaxRule:
    r, rule_id = _rule_reader(table, "tax", n, errors)
    return TaxRule(
        rule_id,
        r.text("legal_entity"),
        r.rate("rate"),
        r.text("tax_account", code=True),
        r.flag("active"),
        str(r.table.get("description", "")),
    )


def _duplicates(accounts: list[Account], rules: list[Rule]) -> list[str]:
    errors = [
        f"account {code} is listed {n} times"
        for code, n in Counter(a.code for a in accounts if a.code).items()
        if n > 1
    ]
    errors += [
        f"rule id {rule_id!r} is used by {n} rules"
        for rule_id, n in Counter(r.rule_id for r in rules if r.rule_id).items()
        if n > 1
    ]
    matches: dict[str, list[str]] = {}  # what active rules match -> their ids
    for r in rules:
        if r.active:
            what = (
                f"sku {r.sku}"
                if isinstance(r, RevenueRule)
                else f"{r.legal_entity} at rate {r.rate.normalize():f}"
            )
            matches.setdefault(what, []).append(repr(r.rule_id))
    errors += [
        f"active rules {' and '.join(ids)} both match {what}"
        for what, ids in matches.items()
        if len(ids) > 1
    ]
    return errors


def plan(file: MappingFile, chart: Mapping[str, Account], existing: Mapping[str, Existing]) -> Plan:
    """The changes loading `file` makes to an ERP with this chart and these rules; raises
    MappingInvalid when the file may not be loaded."""
    errors: list[str] = []
    added_accounts, renamed = [], []
    for a in file.accounts:
        have = chart.get(a.code)
        if have is None:
            added_accounts.append(a)
        elif have.kind != a.kind:
            errors.append(f"account {a.code} is a {have.kind} account, not {a.kind}")
        elif have.name != a.name:
            renamed.append(a)
    kinds = {**{c: a.kind for c, a in chart.items()}, **{a.code: a.kind for a in file.accounts}}

    listed = {r.rule_id for r in file.rules}
    added, changed, unchanged = [], [], []
    for rule in file.rules:
        before = existing.get(rule.rule_id)
        if before is None:
            added.append(rule)
        elif before.rule == rule:
            unchanged.append(rule.rule_id)
        elif before.used and before.rule.shape != rule.shape:
            errors.append(
                f"rule {rule.rule_id!r} was used by postings, so its match and accounts stay as "
                "they are: retire it (active = false) and add the new mapping under a new id"
            )
        else:
            changed.append(rule)
    dropped = [e for rule_id, e in sorted(existing.items()) if rule_id not in listed]
    deactivated = [replace(e.rule, active=False) for e in dropped if e.used and e.rule.active]
    kept = [e.rule for e in dropped if e.used]

    for rule in file.rules:
        errors += _accounts_of(rule, kinds)
    errors += _control_accounts([*file.rules, *kept])
    if errors:
        raise MappingInvalid(errors)
    return Plan(
        accounts_added=tuple(added_accounts),
        accounts_renamed=tuple(renamed),
        added=tuple(added),
        changed=tuple(changed),
        deactivated=tuple(deactivated),
        deleted=tuple(e.rule.rule_id for e in dropped if not e.used),
        unchanged=tuple(unchanged),
    )


def _accounts_of(rule: Rule, kinds: Mapping[str, str]) -> list[str]:
    if isinstance(rule, RevenueRule):
        named = [("revenue", rule.revenue_account, "REVENUE")]
        named.append(("deferred", rule.deferred_account, "LIABILITY"))
    else:
        named = [("tax", rule.tax_account, "LIABILITY")]
    errors = []
    for what, code, kind in named:
        where = f"rule {rule.rule_id!r}: {what} account {code}"
        if code not in kinds:
            errors.append(f"{where} is not in the chart of accounts (add it as an [[account]])")
        elif code in CONTROLLED:
            errors.append(f"{where} is a control account other documents post to")
        elif kinds[code] != kind:
            errors.append(f"{where} is a {kinds[code]} account, not {kind}")
    return errors


def _control_accounts(rules: list[Rule]) -> list[str]:
    """Deferred revenue and tax payable are reconciled account by account against their own
    documents (schedules, billed tax): an account may be one or the other, never both."""
    deferred = {DEFERRED_REVENUE} | {
        r.deferred_account for r in rules if isinstance(r, RevenueRule)
    }
    taxes = {TAX_PAYABLE} | {r.tax_account for r in rules if isinstance(r, TaxRule)}
    return [
        f"account {code} cannot be both a deferred revenue and a tax account"
        for code in sorted(deferred & taxes)
    ]
