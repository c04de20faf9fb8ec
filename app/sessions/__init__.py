"""Visits (sessions), assigned and recorded by the worker: a visit is a visitor's events with
no pause of 30 minutes or more between them (docs/sessions.md).

1. `assign.assign_visits`: before a batch is stored, each event gets its visit id from one
   Redis script over its visitor's last-seen state (app/sessions/assign.py).
2. `app.store.visits.record_visits`: once the batch is stored, each visit's document gains
   the batch's events, keyed by event id, so a batch stored again changes nothing.
"""
