"""Visits (sessions): a visit is a visitor's events with no pause of more than 30 minutes
between them (docs/sessions.md).

1. `rows.rows_of`: the worker appends a row per stored event with an identity to the batch's
   entry in the rollups' stream (`app.rollups.compactor.append_batch`).
2. `fold.fold_visits`: the shard's compactor folds the rows, in stream order, into the
   visitors' states and the visits' documents in MongoDB, exactly once.
3. `assign.assign`: the pure rule that gives an event its visit from its visitor's state.
"""
