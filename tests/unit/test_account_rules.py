"""account-sync's matching and validation rules, as a specification."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from finsync.contract.events import AccountUpserted
from finsync.errors import InvalidEvent
from finsync.ports.crossref import MatchRule
from services.account_sync.matching import normalize_name, normalize_tax_id
from services.account_sync.rules import (
    OpenBusiness,
    changed,
    link_for,
    match_rule,
    moves,
    refusal,
    validate,
)

ENVELOPE = dict(occurred_at=datetime(2026, 11, 2, tzinfo=UTC), source="crm", correlation_id="c")


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


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("ACME Software, Inc.", "acme software"),
        ("Acme  Software Inc", "acme software"),
        ("Acme software inc", "acme software"),
        ("Müller & Söhne GmbH", "muller and sohne"),
        ("Nordic Tools AB Oy", "nordic tools"),
        ("  Beta-Systems Ltd. ", "beta systems"),
    ],
)
def test_names_agree_ignoring_case_accents_punctuation_and_legal_forms(name, normalized):
    assert normalize_name(name) == normalized


def test_a_legal_form_word_before_the_end_of_a_name_is_part_of_the_name():
    assert normalize_name("Company Ltd") == "company"
    assert normalize_name("AG Holding") == "ag holding"


def test_a_name_that_is_only_a_legal_form_keeps_it():
    assert normalize_name("Inc.") == "inc"


@pytest.mark.parametrize(
    ("tax_id", "normalized"),
    [
        ("DE 123.456-789", "DE123456789"),
        ("de123456789", "DE123456789"),
        ("GB/999 9999 73", "GB999999973"),
        ("", None),
        (" .- ", None),
        (None, None),
    ],
)
def test_tax_ids_agree_ignoring_spacing_punctuation_and_case(tax_id, normalized):
    assert normalize_tax_id(tax_id) == normalized


def test_a_valid_account_passes():
    validate(account())
    validate(account(tax_id=None, email_domain=None, parent_account_id="A-0"))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (dict(name="   "), "no name"),
        (dict(name="!!! ---"), "no letters or digits"),
        (dict(country="de"), "ISO-3166"),
        (dict(country="XX"), "ISO-3166"),
        (dict(country="DEU"), "ISO-3166"),
        (dict(currency="EURO"), "unknown currency"),
        (dict(version=0), "versions start at 1"),
        (dict(parent_account_id="A-1"), "its own parent"),
    ],
)
def test_an_invalid_account_is_rejected_with_a_reason(overrides, reason):
    with pytest.raises(InvalidEvent, match=reason):
        validate(account(**overrides))


def test_the_link_stores_normalized_name_and_tax_id_and_the_version():
    link = link_for(account(version=3), "C-1", "B-1")
    assert link.account_id == "A-1"
    assert (link.erp_customer_id, link.billing_account_id) == ("C-1", "B-1")
    assert link.version == 3
    assert link.name == "ACME Software, Inc."
    assert link.normalized_name == "acme software"
    assert link.tax_id == "DE123456"
    assert (link.country, link.currency, link.legal_entity) == ("DE", "EUR", "ACME-DE")
    assert link.match_rule is None and link.matched_account_id is None
    assert link.owns_customer


def test_a_link_for_a_duplicate_records_the_rule_and_does_not_own_the_customer():
    link = link_for(account(), "C-1", "B-1", MatchRule.TAX_ID, "A-0")
    assert link.match_rule is MatchRule.TAX_ID
    assert link.matched_account_id == "A-0"
    assert not link.owns_customer


def test_a_duplicate_with_the_same_tax_id_matched_by_tax_id():
    existing = link_for(account(account_id="A-0", name="Other name"), "C-1", "B-1")
    assert match_rule(existing, account(tax_id="de-123456")) is MatchRule.TAX_ID


def test_a_duplicate_with_the_same_tax_id_and_name_matched_by_tax_id():
    existing = link_for(account(account_id="A-0"), "C-1", "B-1")
    assert match_rule(existing, account()) is MatchRule.TAX_ID


@pytest.mark.parametrize(("existing_tax_id", "new_tax_id"), [(None, None), ("DE1", "DE2")])
def test_a_duplicate_without_the_same_tax_id_matched_by_name_and_country(
    existing_tax_id, new_tax_id
):
    existing = link_for(account(account_id="A-0", tax_id=existing_tax_id), "C-1", "B-1")
    assert match_rule(existing, account(tax_id=new_tax_id)) is MatchRule.NAME_COUNTRY


def test_a_version_that_changes_nothing_the_systems_hold_is_not_a_change():
    old = link_for(account(version=1), "C-1", "B-1")
    assert not changed(old, link_for(account(version=2), "C-1", "B-1"))
    # Same tax id written differently: the same registration.
    assert not changed(old, link_for(account(version=2, tax_id="de123456"), "C-1", "B-1"))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(name="ACME Software GmbH"),
        dict(country="AT"),
        dict(currency="CHF"),
        dict(legal_entity="ACME-CH"),
        dict(tax_id="DE 999"),
        dict(tax_id=None),
        dict(email_domain="acme.test"),
        dict(parent_account_id="A-0"),
    ],
)
def test_a_version_that_changes_what_the_systems_hold_is_a_change(overrides):
    old = link_for(account(version=1), "C-1", "B-1")
    assert changed(old, link_for(account(version=2, **overrides), "C-1", "B-1"))


def test_the_version_and_ids_alone_are_not_a_change():
    old = link_for(account(version=1), "C-1", "B-1")
    assert not changed(old, replace(old, version=9, matched_account_id="A-0"))


@pytest.mark.parametrize(
    ("invoices", "subscriptions", "said"),
    [
        (3, 1, "3 open invoices, 1 active subscription"),
        (1, 0, "1 open invoice"),
        (0, 2, "2 active subscriptions"),
        (0, 0, "nothing open"),
    ],
)
def test_open_business_says_what_is_open(invoices, subscriptions, said):
    business = OpenBusiness(invoices, subscriptions)
    assert str(business) == said
    assert bool(business) is (said != "nothing open")


def test_only_currency_and_legal_entity_are_moves_that_open_business_holds():
    link = link_for(account(), "C-1", "B-1")
    renamed = link_for(account(version=2, name="Other", country="AT", tax_id=None), "C-1", "B-1")
    assert moves(link, renamed) == []
    moved = link_for(account(version=2, currency="USD", legal_entity="ACME-US"), "C-1", "B-1")
    assert moves(link, moved) == [
        "currency from EUR to USD",
        "legal entity from ACME-DE to ACME-US",
    ]


def test_a_move_is_refused_only_while_business_is_open():
    link = link_for(account(), "C-1", "B-1")
    moved = link_for(account(version=4, legal_entity="ACME-US"), "C-1", "B-1")
    assert refusal(link, moved, OpenBusiness(0, 0)) is None
    assert refusal(link, link_for(account(version=4), "C-1", "B-1"), OpenBusiness(9, 9)) is None
    duplicate = replace(link, matched_account_id="A-0", match_rule=MatchRule.TAX_ID)
    assert refusal(duplicate, moved, OpenBusiness(0, 1)) == (
        "account A-1 v4 changes its legal entity from ACME-DE to ACME-US while it has open "
        "business: 1 active subscription. The whole version is refused and v1 stays in force; "
        "close or move that business first, or send a version without the change"
    )
