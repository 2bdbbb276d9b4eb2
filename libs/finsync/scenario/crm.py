"""What CRM publishes, in the order it sends it: hundreds of accounts — some duplicates of
others, some children before their parents, some updated and then sent a stale version, an
orphan whose parent never comes — and closed-won opportunities, some of which arrive before
their account; a few of each malformed.
"""

from __future__ import annotations

import random
import uuid
from datetime import date

from finsync.contract.events import AccountUpserted, Event, OpportunityClosed
from finsync.runtime.messages import Outgoing
from finsync.scenario.opportunities import invalid_opportunities, opportunity
from finsync.scenario.plan import UNREADABLE, Expected, Scenario, envelope

# Legal entity, the currency it bills in, the countries its customers are in. The UK entity
# bills its Irish customers in euros: foreign currency in its sterling books.
REGIONS = [
    ("ACME-US", "USD", ["US", "US", "US", "CA"]),
    ("ACME-DE", "EUR", ["DE", "DE", "AT", "FR", "NL"]),
    ("ACME-UK", "GBP", ["GB", "GB"]),
    ("ACME-JP", "JPY", ["JP"]),
    ("ACME-UK", "EUR", ["IE"]),
]
LEGAL_FORMS = {
    "US": "Inc.",
    "CA": "Ltd.",
    "DE": "GmbH",
    "AT": "GmbH",
    "FR": "SAS",
    "NL": "B.V.",
    "GB": "Ltd",
    "IE": "Ltd",
    "JP": "K.K.",
}
_FIRST = (
    "Northwind Blue-Harbor Granite Silverline Kestrel Juniper Aurora Copperfield Meridian "
    "Tidewater Evergreen Redwood Falcon Summit Lakeside Orion Harbor-Light Ironbridge Quartz "
    "Willow Cobalt Stonegate Brightwater Pinecrest Sable Vantage Horizon Atlas Beacon Crescent"
)
FIRST = _FIRST.split()
_SECOND = (
    "Logistics Analytics Foods Robotics Health Media Energy Retail Labs Systems Freight "
    "Pharma Textiles Mobility Insurance"
)
SECOND = _SECOND.split()
MIDDLE = ["", "", "", "Nordic", "Pacific", "United", "Global", "Digital", "Applied", "Advanced",
          "Prime", "Central", "Coastal", "Alpine", "Metro"]  # fmt: skip
MIN_ACCOUNTS = 20  # enough for every kind of account, deal and payment to occur


def company_name(rng: random.Random, country: str, first: str | None = None) -> str:
    first = first or rng.choice(FIRST).replace("-", " ")
    words = [first, rng.choice(MIDDLE), rng.choice(SECOND), LEGAL_FORMS.get(country, "Ltd")]
    return " ".join(w for w in words if w)


def _tax_id(rng: random.Random, country: str) -> str:
    return f"{country}{rng.randrange(10**8, 10**9)}"


def build(seed: int, tag: str | None, as_of: date, accounts: int = 200) -> Scenario:
    """The whole CRM side of the scenario; billing and payments follow from what happens."""
    if accounts < MIN_ACCOUNTS:
        raise ValueError(f"a scenario needs at least {MIN_ACCOUNTS} accounts, not {accounts}")
    rng = random.Random(seed)
    tag = tag or f"s{seed}{uuid.uuid4().hex[:4]}"
    # Who the companies are differs from run to run, so one run's accounts are not duplicates
    # of the last one's; what happens to them is the seed's.
    who = random.Random(f"{seed}:{tag}")
    expected = Expected()
    valid: dict[str, AccountUpserted] = {}

    def account(n: int, name_prefix: str | None = None, **over: object) -> AccountUpserted:
        entity, currency, countries = rng.choice(REGIONS)
        country = str(over.get("country") or rng.choice(countries))
        account_id = f"ACC-{tag}-{n:04d}"
        name = company_name(who, country, name_prefix)
        fields: dict[str, object] = {
            **envelope("crm", f"acc-{account_id}"),
            "account_id": account_id,
            "name": name,
            "country": country,
            "currency": currency,
            "tax_id": _tax_id(who, country) if rng.random() < 0.9 else None,
            "email_domain": name.split()[0].lower() + ".example",
            "legal_entity": entity,
            "version": 1,
        }
        fields.update(over)
        return AccountUpserted.model_validate(fields)

    # Names are kept distinct (per country) so that only the planted duplicates match.
    names: set[tuple[str, str]] = set()

    def distinct(n: int, name_prefix: str | None = None, **over: object) -> AccountUpserted:
        a = account(n, name_prefix, **over)
        while (a.name.lower(), a.country) in names:
            a = account(n, name_prefix, **over)
        names.add((a.name.lower(), a.country))
        return a

    for n in range(1, accounts + 1):
        a = distinct(n)
        valid[a.account_id] = a
    plain = list(valid.values())

    # Children: some published before their parents, which then wait in retry.
    children = []
    for n, parent in enumerate(rng.sample(plain, max(4, accounts // 12)), accounts + 1):
        child = distinct(
            n,
            legal_entity=parent.legal_entity,
            currency=parent.currency,
            country=parent.country,
            parent_account_id=parent.account_id,
            name_prefix=parent.name.split(" ")[0],  # a subsidiary: the group's name, a division
        )
        valid[child.account_id] = child
        children.append(child)
    early_children = {c.account_id for c in children[: len(children) // 2]}

    # Duplicates: the same company entered twice in CRM — by tax id written differently, or by
    # the same name with another spelling of case and legal form.
    duplicates = []
    n = accounts + len(children) + 1
    for original in rng.sample([a for a in plain if a.tax_id], max(3, accounts // 40)):
        tax = original.tax_id or ""
        dup = account(
            n,
            legal_entity=original.legal_entity,
            currency=original.currency,
            country=original.country,
            name=original.name.upper(),
            tax_id=f"{tax[:2]} {tax[2:5]}.{tax[5:8]}-{tax[8:]}",
        )
        duplicates.append(dup)
        expected.linked[dup.account_id] = original.account_id
        n += 1
    for original in rng.sample([a for a in plain if not a.tax_id], max(2, accounts // 60)):
        bare = original.name.rsplit(" ", 1)[0]
        dup = account(
            n,
            legal_entity=original.legal_entity,
            currency=original.currency,
            country=original.country,
            name=f"{bare.lower()}, {LEGAL_FORMS[original.country].upper()}",
            tax_id=None,
        )
        duplicates.append(dup)
        expected.linked[dup.account_id] = original.account_id
        n += 1
    for dup in duplicates:
        valid[dup.account_id] = dup

    # Updates (a new billing domain). For some, version 3 reaches CRM's topic before version 2:
    # the stale version 2 must change nothing.
    updates = []
    for a in rng.sample(plain, max(6, accounts // 15)):
        v2 = a.model_copy(
            update={
                **envelope("crm", a.correlation_id),
                "version": 2,
                "email_domain": f"billing.{a.email_domain}",
            }
        )
        if rng.random() < 0.5:
            updates.append(v2)
            valid[a.account_id] = v2
            continue
        v3 = v2.model_copy(
            update={**envelope("crm", a.correlation_id), "version": 3,
                    "email_domain": f"ap.{a.email_domain}"}
        )  # fmt: skip
        updates += [v3, v2]
        valid[a.account_id] = v3

    # An orphan: its parent never comes, so it ends as a dead letter after its retries.
    orphan_parent = distinct(n + 1)
    orphan = distinct(
        n + 2,
        legal_entity=orphan_parent.legal_entity,
        currency=orphan_parent.currency,
        country=orphan_parent.country,
        parent_account_id=orphan_parent.account_id,
    )
    expected.dead_letter("account-sync", orphan.account_id, "DependencyNotReady")
    bad_account = account(n + 3, country="XX")
    expected.dead_letter("account-sync", bad_account.account_id, "InvalidEvent")
    unreadable_key = f"ACC-{tag}-UNREADABLE"
    expected.dead_letter("account-sync", unreadable_key, "UndecodableEvent")

    expected.versions = {a.account_id: a.version for a in valid.values()}

    # Opportunities: every account buys once, and two of the duplicates too.
    buyers = [a for a in valid.values() if a.account_id not in expected.linked]
    buyers += [valid[d] for d in rng.sample(sorted(expected.linked), 2)]
    opportunities = [opportunity(rng, tag, k, b, as_of) for k, b in enumerate(buyers, 1)]
    expected.activated = {o.opportunity_id for o in opportunities}

    invalid_opps = invalid_opportunities(rng, tag, plain[0], as_of)
    for o, error in invalid_opps:
        expected.dead_letter("subscription-activator", o.opportunity_id, error)
    # Numbered past the valid deals: with 9,001 buyers or more, 9001 was one of theirs.
    orphan_opp = opportunity(rng, tag, 9000 + len(buyers) + 1, orphan, as_of)
    expected.dead_letter("subscription-activator", orphan_opp.opportunity_id, "DependencyNotReady")
    expected.dead_letter("subscription-activator", f"OPP-{tag}-UNREADABLE", "UndecodableEvent")

    # A few accounts reach CRM's topic only after their opportunities, which wait in retry.
    # (Not parents, originals of duplicates or updated accounts: those have stories of their own.)
    busy = {c.parent_account_id for c in children} | {u.account_id for u in updates}
    busy |= set(expected.linked.values()) | {plain[0].account_id}
    late = rng.sample([a for a in plain if a.account_id not in busy], max(3, accounts // 30))
    late_ids = {a.account_id for a in late}

    crm: list[Event | Outgoing] = [
        *(c for c in children if c.account_id in early_children),
        *(a for a in plain if a.account_id not in late_ids),
        *(c for c in children if c.account_id not in early_children),
        *duplicates,
        orphan,
        bad_account,
        *updates,
        Outgoing(AccountUpserted.TOPIC, unreadable_key.encode(), UNREADABLE),
        *opportunities,
        opportunities[0],  # delivered twice
        opportunities[1].model_copy(update={"event_id": uuid.uuid4()}),  # re-sent, new event id
        *(o for o, _ in invalid_opps),
        orphan_opp,
        Outgoing(OpportunityClosed.TOPIC, f"OPP-{tag}-UNREADABLE".encode(), UNREADABLE),
    ]
    return Scenario(
        seed=seed,
        tag=tag,
        as_of=as_of,
        rng=rng,
        crm=crm,
        late_accounts=late,
        opportunities=opportunities,
        orphan_parent=orphan_parent,
        expected=expected,
    )
