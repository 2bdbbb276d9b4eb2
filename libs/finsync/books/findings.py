"""What a reconciliation finds: a break (an unexplained difference) or a held item (a
difference a dead letter explains, waiting for someone to mend and replay it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class Check:
    name: str  # stable, for machines: "gl-ar"
    title: str  # for people: "GL 1200 equals the AR sub-ledger"
    kind: str  # "ledger" or "three-way"


@dataclass(frozen=True)
class Finding:
    check: str  # Check.name
    scope: str  # where: "ACME-DE EUR", or the document
    detail: str  # what differs, with the figures
    documents: tuple[str, ...] = ()  # the documents behind it, by id
    held: str = ""  # the dead letter that explains it: "invoice-poster InvalidEvent: ..."

    @property
    def is_break(self) -> bool:
        return not self.held

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "documents": list(self.documents)}


@dataclass
class Report:
    checks: list[Check]
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a check could not look at, and why
    # Per entity, the whole ledger in its functional currency: (entity, currency, debits,
    # credits).
    functional_totals: list[tuple[str, str, Decimal, Decimal]] = field(default_factory=list)

    @property
    def breaks(self) -> list[Finding]:
        return [f for f in self.findings if f.is_break]

    @property
    def held(self) -> list[Finding]:
        return [f for f in self.findings if not f.is_break]

    def of(self, check: Check) -> list[Finding]:
        return [f for f in self.findings if f.check == check.name]

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": not self.breaks,
            "checks": [
                {
                    **asdict(c),
                    "breaks": sum(f.is_break for f in self.of(c)),
                    "held": sum(not f.is_break for f in self.of(c)),
                }
                for c in self.checks
            ],
            "breaks": [f.as_dict() for f in self.breaks],
            "held": [f.as_dict() for f in self.held],
            "notes": self.notes,
            "functional_totals": [
                {"legal_entity": e, "currency": c, "debits": d, "credits": cr}
                for e, c, d, cr in self.functional_totals
            ],
        }
