"""`finsync erp`: the reference ERP's finance jobs — one module per job, registered here."""

from __future__ import annotations

import argparse

from finsync.cli import mapping, periods, rates, recognition, revalue

# Each module has register(erp_subparsers) adding its commands under `finsync erp`.
ERP_COMMANDS: tuple[object, ...] = (periods, recognition, mapping, rates, revalue)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    erp = sub.add_parser("erp", help="the reference ERP's finance jobs").add_subparsers(
        dest="action", required=True
    )
    for module in ERP_COMMANDS:
        module.register(erp)  # type: ignore[attr-defined]
