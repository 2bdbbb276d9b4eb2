"""Contract tests of the CrossReference port, run on each adapter in `port_support.CROSSREFS`."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from finsync.ports.crossref import AccountLink, CrossReference, MatchRule
from tests.integration.port_support import COUNTRY, CURRENCY, ENTITY, uid

pytestmark = pytest.mark.integration


def a_link(**changes: Any) -> AccountLink:
    """An account that owns its customer; its name is unique, so only this test matches it."""
    name = f"Müller {uuid.uuid4().hex[:10]} GmbH"
    fields: dict[str, Any] = {
        "account_id": uid("ACC"),
        "erp_customer_id": uid("CUS"),
        "billing_account_id": uid("BA"),
        "version": 1,
        "name": name,
        "normalized_name": name.lower().replace("ü", "u").removesuffix(" gmbh"),
        "country": COUNTRY,
        "currency": CURRENCY,
        "legal_entity": ENTITY,
        "tax_id": uid("DE").lower(),
        "email_domain": "mueller.example",
    }
    return AccountLink(**(fields | changes))


def duplicate_of(owner: AccountLink, rule: MatchRule, **changes: Any) -> AccountLink:
    return replace(
        a_link(**changes),
        erp_customer_id=owner.erp_customer_id,
        billing_account_id=owner.billing_account_id,
        match_rule=rule,
        matched_account_id=owner.account_id,
    )


def probe_of(link: AccountLink, **changes: Any) -> dict[str, Any]:
    """The arguments of match() for a new account like `link`."""
    fields = {
        "account_id": uid("ACC"),
        "tax_id": link.tax_id,
        "normalized_name": link.normalized_name,
        "country": link.country,
        "legal_entity": link.legal_entity,
        "currency": link.currency,
    }
    return fields | changes


def test_crossref_has_no_link_for_an_account_not_synced(crossref: CrossReference) -> None:
    assert crossref.link(uid("ACC")) is None


def test_crossref_returns_the_link_it_saved(crossref: CrossReference) -> None:
    parent = a_link()
    link = a_link(parent_account_id=parent.account_id)
    crossref.save(parent)
    crossref.save(link)
    assert crossref.link(link.account_id) == link
    assert crossref.link(link.account_id).owns_customer


def test_crossref_returns_a_linked_duplicate_with_its_rule_and_owner(
    crossref: CrossReference,
) -> None:
    owner = a_link()
    crossref.save(owner)
    for rule in MatchRule:
        duplicate = duplicate_of(owner, rule, tax_id=None)
        crossref.save(duplicate)
        found = crossref.link(duplicate.account_id)
        assert found == duplicate
        assert isinstance(found.match_rule, MatchRule) and found.match_rule is rule
        assert found.matched_account_id == owner.account_id and not found.owns_customer


def test_crossref_replaces_a_link_saved_again(crossref: CrossReference) -> None:
    link = a_link()
    crossref.save(link)
    newer = replace(
        link,
        version=2,
        name="Müller Holding GmbH",
        normalized_name=f"muller holding {uuid.uuid4().hex[:8]}",
        tax_id=None,
        email_domain=None,
        erp_customer_id=uid("CUS"),
    )
    crossref.save(newer)
    assert crossref.link(link.account_id) == newer


def test_crossref_matches_an_owner_with_the_same_tax_id_whatever_its_name(
    crossref: CrossReference,
) -> None:
    owner = a_link()
    crossref.save(owner)
    assert crossref.match(**probe_of(owner, normalized_name="another name")) == owner


def test_crossref_matches_an_owner_with_the_same_name_and_country_when_either_has_no_tax_id(
    crossref: CrossReference,
) -> None:
    with_tax_id, without_tax_id = a_link(), a_link(tax_id=None)
    crossref.save(with_tax_id)
    crossref.save(without_tax_id)
    assert crossref.match(**probe_of(with_tax_id, tax_id=None)) == with_tax_id
    assert crossref.match(**probe_of(without_tax_id, tax_id=uid("de"))) == without_tax_id
    assert crossref.match(**probe_of(without_tax_id, tax_id=None)) == without_tax_id


def test_crossref_does_not_match_the_same_name_when_both_have_different_tax_ids(
    crossref: CrossReference,
) -> None:
    owner = a_link()
    crossref.save(owner)
    assert crossref.match(**probe_of(owner, tax_id=uid("de"))) is None


def test_crossref_does_not_match_the_same_name_in_another_country(
    crossref: CrossReference,
) -> None:
    owner = a_link(tax_id=None)
    crossref.save(owner)
    assert crossref.match(**probe_of(owner, country="AT")) is None


@pytest.mark.parametrize("by", ["tax id", "name and country"])
@pytest.mark.parametrize(
    "other", [{"legal_entity": "ACME-UK"}, {"currency": "GBP"}], ids=["entity", "currency"]
)
def test_crossref_does_not_match_across_legal_entities_or_currencies(
    crossref: CrossReference, by: str, other: dict[str, str]
) -> None:
    owner = a_link(tax_id=uid("de") if by == "tax id" else None)
    crossref.save(owner)
    if by == "tax id":
        assert crossref.match(**probe_of(owner, normalized_name="another name")) == owner
        assert crossref.match(**probe_of(owner, normalized_name="another name", **other)) is None
    else:
        assert crossref.match(**probe_of(owner)) == owner
        assert crossref.match(**probe_of(owner, **other)) is None


def test_crossref_never_matches_a_linked_duplicate_only_the_owner(
    crossref: CrossReference,
) -> None:
    owner = a_link()
    crossref.save(owner)
    # A duplicate by tax id, under a name of its own: its tax id finds the owner, its name
    # alone (which only it has) finds nothing.
    by_tax_id = duplicate_of(owner, MatchRule.TAX_ID, tax_id=owner.tax_id)
    crossref.save(by_tax_id)
    assert crossref.match(**probe_of(by_tax_id)) == owner
    assert crossref.match(**probe_of(by_tax_id, tax_id=None)) is None
    # A duplicate with a tax id that only it has: that tax id finds nothing.
    by_name = duplicate_of(owner, MatchRule.NAME_COUNTRY, tax_id=uid("de"))
    crossref.save(by_name)
    assert crossref.match(**probe_of(by_name)) is None


def test_crossref_prefers_a_tax_id_match_to_a_name_match(crossref: CrossReference) -> None:
    by_name = a_link(tax_id=None)
    by_tax_id = a_link()
    crossref.save(by_name)
    crossref.save(by_tax_id)
    assert crossref.match(**probe_of(by_name, tax_id=by_tax_id.tax_id)) == by_tax_id


def test_crossref_keeps_the_newer_version_when_an_older_one_is_saved(
    crossref: CrossReference,
) -> None:
    link = replace(a_link(), version=3)
    assert crossref.save(link)
    assert not crossref.save(replace(link, version=2, name="Stale Name GmbH"))
    assert not crossref.save(replace(link, name="Same Version GmbH"))
    assert crossref.link(link.account_id) == link


def test_crossref_never_matches_an_account_with_itself(crossref: CrossReference) -> None:
    owner = a_link()
    crossref.save(owner)
    assert crossref.match(**probe_of(owner, account_id=owner.account_id)) is None


def test_crossref_lists_the_accounts_that_share_a_customer(crossref: CrossReference) -> None:
    owner, other = a_link(), a_link()
    duplicates = [duplicate_of(owner, rule, tax_id=None) for rule in MatchRule]
    for link in [owner, other, *duplicates]:
        crossref.save(link)
    assert sorted(crossref.sharing(owner.erp_customer_id)) == sorted(
        [owner.account_id, *(d.account_id for d in duplicates)]
    )
    assert list(crossref.sharing(other.erp_customer_id)) == [other.account_id]
    assert list(crossref.sharing(uid("CUS"))) == []
