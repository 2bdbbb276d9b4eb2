"""How account-sync recognises the same company under two CRM accounts: pure string rules.

Two accounts are one customer when their tax ids agree once spacing and punctuation are
ignored, or when their names agree once case, accents, punctuation and legal-form words
("Inc", "GmbH", "Ltd" ...) are ignored, they are in the same country and at most one of them
has a tax id (two different tax ids are two companies).
"""

from __future__ import annotations

import re
import unicodedata

# Legal-form words that say nothing about who the company is.
_FORMS = (
    "inc incorporated corp corporation co company llc llp lp ltd limited plc gmbh ag kg "
    "ug sa sas sarl srl spa bv nv oy ab as aps asa kk pty pte sl slu"
)
LEGAL_FORMS = frozenset(_FORMS.split())


def normalize_name(name: str) -> str:
    """`ACME Software, Inc.` and `Acme  Software Inc` both become `acme software`."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    plain = plain.replace("&", " and ")
    words = re.sub(r"[^a-z0-9]+", " ", plain).split()
    while len(words) > 1 and words[-1] in LEGAL_FORMS:
        words.pop()
    return " ".join(words)


def normalize_tax_id(tax_id: str | None) -> str | None:
    """`DE 123.456-789` and `de123456789` are the same registration; blank is none."""
    if tax_id is None:
        return None
    plain = re.sub(r"[^A-Za-z0-9]", "", tax_id).upper()
    return plain or None
