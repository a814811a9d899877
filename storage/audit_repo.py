"""The audit log: append-only, written in the same transaction as the change it
records, so the log and the state never disagree."""

from __future__ import annotations

from core.records import AuditEntry
from storage.append_only import AppendOnlyLog
from storage.models import AuditRow


class SqlAuditLog(AppendOnlyLog[AuditEntry]):
    _row = AuditRow
    _entry = AuditEntry
