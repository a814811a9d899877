"""The ledger (table `transactions`): one append-only row per charge, never updated."""

from __future__ import annotations

from core.records import LedgerEntry
from storage.append_only import AppendOnlyLog
from storage.models import TransactionRow


class SqlLedger(AppendOnlyLog[LedgerEntry]):
    _row = TransactionRow
    _entry = LedgerEntry
