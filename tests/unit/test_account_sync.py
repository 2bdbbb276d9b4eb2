"""account-sync's handler against in-memory ERP, billing and cross-reference, as a specification."""

import uuid
from datetime import UTC, datetime

import pytest

from finsync.contract.events import AccountUpserted, SyncAction
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.crossref import MatchRule
from services.account_sync.handler import Systems, sync_account

ENVELOPE = dict(occurred_at=datetime(2026, 11, 2, tzinfo=UTC), source="crm", correlation_id="c")


class FakeErp:
    def __init__(self):
        self.customers = {}  # customer id -> Customer
        self.updates = []
        self.open = {}  # CRM account id -> invoices with an amount open

    def create_customer(self, customer):
        customer_id = f"C-{len(self.customers) + 1}"
        self.customers[customer_id] = customer
        return customer_id

    def update_customer(self, customer_id, customer):
        assert customer_id in self.customers
        self.customers[customer_id] = customer
        self.updates.append(customer_id)

    def open_invoices(self, account_ids):
        return sum(self.open.get(a, 0) for a in account_ids)

    def flush(self):
        pass


class FakeBilling:
    def __init__(self):
        self.accounts = {}  # billing account id -> BillingAccount
        self.updates = []
        self.active = {}  # CRM account id -> subscriptions not ended

    def create_account(self, account):
        billing_account_id = f"B-{len(self.accounts) + 1}"
        self.accounts[billing_account_id] = account
        return billing_account_id

    def update_account(self, billing_account_id, account):
        assert billing_account_id in self.accounts
        self.accounts[billing_account_id] = account
        self.updates.append(billing_account_id)

    def active_subscriptions(self, account_ids, as_of):
        return sum(self.active.get(a, 0) for a in account_ids)


class FakeCrossReference:
    def __init__(self):
        self.links = {}  # account id -> AccountLink, in the order synced
        self.saves = 0

    def link(self, account_id, lock=False):
        return self.links.get(account_id)

    def match(self, tax_id, normalized_name, country, legal_entity, currency, account_id):
        owners = [
            x
            for x in self.links.values()
            if x.owns_customer
            and x.account_id != account_id
            and x.legal_entity == legal_entity
            and x.currency == currency
        ]
        by_tax_id = [x for x in owners if x.tax_id is not None and x.tax_id == tax_id]
        by_name = [
            x
            for x in owners
            if (x.normalized_name, x.country) == (normalized_name, country)
            and (x.tax_id is None or tax_id is None)  # two tax ids that differ: two companies
        ]
        return (by_tax_id + by_name + [None])[0]

    def sharing(self, erp_customer_id):
        return [x.account_id for x in self.links.values() if x.erp_customer_id == erp_customer_id]

    def save(self, link):
        stored = self.links.get(link.account_id)
        if stored is not None and stored.version >= link.version:
            return False
        self.links[link.account_id] = link
        self.saves += 1
        return True


def systems():
    return Systems(erp=FakeErp(), billing=FakeBilling(), crossref=FakeCrossReference())


def account(**overrides):
    fields = dict(
        event_id=uuid.uuid4(),
        account_id="A-1",
        name="ACME Software, Inc.",
        country="DE",
        currency="EUR",
        tax_id="DE 123.456",
        email_domain="acme.example",
        parent_account_id=None,
        legal_entity="ACME-DE",
        version=1,
        **ENVELOPE,
    )
    return AccountUpserted(**{**fields, **overrides})


def sync(event, s):
    [synced] = sync_account(event, s)
    return synced


def writes(s):
    return (len(s.erp.customers), s.erp.updates, len(s.billing.accounts), s.billing.updates)


def test_a_new_account_creates_a_customer_and_a_billing_account():
    s = systems()
    event = account()
    synced = sync(event, s)
    assert synced.action is SyncAction.CREATED
    assert (synced.erp_customer_id, synced.billing_account_id) == ("C-1", "B-1")
    assert synced.account_id == "A-1" and synced.version == 1
    assert synced.matched_account_id is None and synced.match_rule is None
    assert synced.correlation_id == event.correlation_id
    assert synced.causation_id == str(event.event_id)
    customer = s.erp.customers["C-1"]
    assert (customer.account_id, customer.name, customer.tax_id) == (
        "A-1",
        event.name,
        "DE 123.456",
    )
    assert customer.parent_customer_id is None
    assert s.billing.accounts["B-1"].legal_entity == "ACME-DE"
    assert s.crossref.links["A-1"].version == 1


@pytest.mark.parametrize("version", [2, 1])
def test_a_version_not_newer_than_the_synced_one_changes_nothing(version):
    s = systems()
    sync(account(version=2), s)
    before, saves = writes(s), s.crossref.saves
    synced = sync(account(version=version, name="Renamed GmbH"), s)
    assert synced.action is SyncAction.UNCHANGED
    assert (synced.erp_customer_id, synced.billing_account_id) == ("C-1", "B-1")
    assert writes(s) == before
    assert s.crossref.saves == saves
    assert s.crossref.links["A-1"].version == 2
    assert s.erp.customers["C-1"].name == "ACME Software, Inc."


def test_a_newer_version_with_changes_updates_the_customer_and_the_billing_account():
    s = systems()
    sync(account(version=1), s)
    synced = sync(account(version=2, name="ACME Cloud GmbH", email_domain="acme.test"), s)
    assert synced.action is SyncAction.UPDATED
    assert (synced.erp_customer_id, synced.billing_account_id) == ("C-1", "B-1")
    assert s.erp.updates == ["C-1"] and s.billing.updates == ["B-1"]
    assert len(s.erp.customers) == 1 and len(s.billing.accounts) == 1
    assert s.erp.customers["C-1"].name == "ACME Cloud GmbH"
    assert s.billing.accounts["B-1"].email_domain == "acme.test"
    link = s.crossref.links["A-1"]
    assert (link.version, link.name, link.normalized_name) == (2, "ACME Cloud GmbH", "acme cloud")


def test_a_newer_version_without_changes_is_unchanged_but_its_version_is_stored():
    s = systems()
    sync(account(version=1), s)
    synced = sync(account(version=5), s)
    assert synced.action is SyncAction.UNCHANGED
    assert synced.version == 5
    assert s.erp.updates == [] and s.billing.updates == []
    assert s.crossref.links["A-1"].version == 5


def test_a_new_account_with_the_same_tax_id_written_differently_is_linked_not_created():
    s = systems()
    sync(account(account_id="A-1", tax_id="DE 123.456"), s)
    synced = sync(account(account_id="A-2", name="Acme Europe", tax_id="de123456"), s)
    assert synced.action is SyncAction.UNCHANGED
    assert (synced.erp_customer_id, synced.billing_account_id) == ("C-1", "B-1")
    assert synced.matched_account_id == "A-1"
    assert synced.match_rule == MatchRule.TAX_ID.value
    assert len(s.erp.customers) == 1 and len(s.billing.accounts) == 1
    link = s.crossref.links["A-2"]
    assert link.match_rule is MatchRule.TAX_ID and not link.owns_customer


def test_a_new_account_with_the_same_name_in_the_same_country_is_linked_not_created():
    s = systems()
    sync(account(account_id="A-1", name="ACME Software, Inc.", tax_id=None), s)
    synced = sync(account(account_id="A-2", name="Acme software inc", tax_id="DE 999"), s)
    assert synced.action is SyncAction.UNCHANGED
    assert synced.erp_customer_id == "C-1"
    assert synced.matched_account_id == "A-1"
    assert synced.match_rule == MatchRule.NAME_COUNTRY.value
    assert len(s.erp.customers) == 1 and len(s.billing.accounts) == 1


def test_the_same_name_with_two_different_tax_ids_is_two_customers():
    s = systems()
    sync(account(account_id="A-1", tax_id="DE 111"), s)
    synced = sync(account(account_id="A-2", tax_id="DE 222"), s)
    assert synced.action is SyncAction.CREATED
    assert synced.erp_customer_id == "C-2"


def test_the_same_name_in_another_country_is_another_customer():
    s = systems()
    sync(account(account_id="A-1", tax_id=None), s)
    synced = sync(account(account_id="A-2", tax_id=None, country="AT"), s)
    assert synced.action is SyncAction.CREATED
    assert synced.erp_customer_id == "C-2"


@pytest.mark.parametrize("overrides", [dict(legal_entity="ACME-US"), dict(currency="USD")])
def test_a_duplicate_in_another_legal_entity_or_currency_is_another_customer(overrides):
    s = systems()
    sync(account(account_id="A-1"), s)
    synced = sync(account(account_id="A-2", **overrides), s)  # same tax id and name
    assert synced.action is SyncAction.CREATED
    assert synced.erp_customer_id == "C-2" and synced.billing_account_id == "B-2"
    assert synced.matched_account_id is None and synced.match_rule is None


def test_a_newer_version_of_a_linked_duplicate_does_not_change_the_shared_customer():
    s = systems()
    sync(account(account_id="A-1"), s)
    sync(account(account_id="A-2", name="Acme Europe"), s)
    synced = sync(account(account_id="A-2", name="Acme Europe Renamed", version=2), s)
    assert synced.action is SyncAction.UNCHANGED
    assert synced.matched_account_id == "A-1"
    assert s.erp.updates == [] and s.billing.updates == []
    assert s.crossref.links["A-2"].version == 2


def test_a_child_gets_its_parents_customer_and_billing_account_as_parents():
    s = systems()
    sync(account(account_id="P-1", name="Parent Holding", tax_id=None), s)
    synced = sync(account(account_id="A-1", parent_account_id="P-1"), s)
    assert synced.action is SyncAction.CREATED
    customer = s.erp.customers[synced.erp_customer_id]
    assert customer.parent_customer_id == "C-1"
    assert s.billing.accounts[synced.billing_account_id].parent_billing_account_id == "B-1"


def test_a_child_whose_parent_is_not_synced_waits_and_writes_nothing():
    s = systems()
    with pytest.raises(DependencyNotReady, match="P-1"):
        sync_account(account(parent_account_id="P-1"), s)
    assert writes(s) == (0, [], 0, [])
    assert s.crossref.links == {}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (dict(country="Germany"), "country"),
        (dict(currency="XYZ"), "currency"),
        (dict(parent_account_id="A-1"), "own parent"),
    ],
)
def test_an_invalid_account_is_rejected_and_writes_nothing(overrides, reason):
    s = systems()
    with pytest.raises(InvalidEvent, match=reason):
        sync_account(account(**overrides), s)
    assert writes(s) == (0, [], 0, [])
    assert s.crossref.links == {}


# --- currency and legal entity under open business -------------------------------------------


def test_an_owner_moving_currency_while_its_customer_has_open_business_is_refused_whole():
    s = systems()
    sync(account(account_id="A-1"), s)
    sync(account(account_id="A-2", name="Acme Europe"), s)  # a duplicate: shares C-1 and B-1
    s.erp.open = {"A-1": 2, "A-2": 1}
    s.billing.active = {"A-2": 1}
    before, saves = writes(s), s.crossref.saves
    moved = account(account_id="A-1", version=2, currency="USD", name="ACME Renamed")
    with pytest.raises(InvalidEvent) as refused:
        sync_account(moved, s)
    assert str(refused.value) == (
        "account A-1 v2 changes its currency from EUR to USD while its customer has open "
        "business: 3 open invoices, 1 active subscription. The whole version is refused and v1 "
        "stays in force; close or move that business first, or send a version without the change"
    )
    assert writes(s) == before and s.crossref.saves == saves  # not even the new name
    assert s.erp.customers["C-1"].currency == "EUR" and s.erp.customers["C-1"].name == (
        "ACME Software, Inc."
    )
    assert s.crossref.links["A-1"].version == 1


def test_after_a_refused_version_a_later_one_without_the_move_goes_through():
    s = systems()
    sync(account(), s)
    s.billing.active = {"A-1": 1}
    with pytest.raises(InvalidEvent):
        sync_account(account(version=2, legal_entity="ACME-US"), s)
    synced = sync(account(version=3, name="ACME Renamed"), s)
    assert synced.action is SyncAction.UPDATED
    assert s.erp.customers["C-1"].name == "ACME Renamed"
    assert s.crossref.links["A-1"].version == 3
    # The refused version replayed from the dead letters, later: older than the one in force.
    replayed = sync(account(version=2, legal_entity="ACME-US"), s)
    assert replayed.action is SyncAction.UNCHANGED
    assert s.crossref.links["A-1"].legal_entity == "ACME-DE"


def test_a_move_with_nothing_open_is_applied():
    s = systems()
    sync(account(), s)
    s.erp.open = {"A-9": 4}  # another account's business does not hold this one
    synced = sync(account(version=2, currency="USD", legal_entity="ACME-US"), s)
    assert synced.action is SyncAction.UPDATED
    customer = s.erp.customers["C-1"]
    assert (customer.currency, customer.legal_entity) == ("USD", "ACME-US")
    assert s.billing.accounts["B-1"].currency == "USD"


def test_a_linked_duplicate_moving_is_held_by_its_own_business_only():
    s = systems()
    sync(account(account_id="A-1"), s)
    sync(account(account_id="A-2", name="Acme Europe"), s)
    s.billing.active = {"A-1": 5}  # the owner's business does not hold the duplicate
    synced = sync(account(account_id="A-2", name="Acme Europe", version=2, currency="USD"), s)
    assert synced.action is SyncAction.UNCHANGED and synced.erp_customer_id == "C-1"
    s.erp.open = {"A-2": 1}
    reason = r"legal entity from ACME-DE to ACME-US while it has open business: 1 open invoice\."
    with pytest.raises(InvalidEvent, match=reason):
        sync_account(account(account_id="A-2", version=3, legal_entity="ACME-US"), s)
    assert s.crossref.links["A-2"].version == 2
    assert s.erp.updates == [] and s.billing.updates == []
    owner = s.crossref.links["A-1"]
    assert (owner.version, owner.currency, owner.legal_entity) == (1, "EUR", "ACME-DE")
