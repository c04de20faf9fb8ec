"""Which MongoDB errors are the server's condition, to be retried, and which are a write the
server refuses for a reason of its own (a document too large, a value it rejects).

A caller that sets refused work aside (the compactor) must not set aside work that was only
unlucky: it retries what `is_transient` says passes, and isolates the rest.
"""

from __future__ import annotations

from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, WriteConcernError

# Labels a server puts on an error that the same operation may succeed on a retry.
TRANSIENT_LABELS = frozenset(
    {"TransientTransactionError", "RetryableWriteError", "RetryableError", "SystemOverloadedError"}
)
# Server error codes of conditions that pass. Not among them: the codes of a refused document
# (2 BadValue, 121 DocumentValidationFailure, 10334 BSONObjectTooLarge, 11000 DuplicateKey ...).
TRANSIENT_CODES = frozenset(
    {
        # FerretDB answers InternalError for any failure of its storage (SQLite busy past its
        # timeout, I/O), never for a document it refuses; on MongoDB it is the server's own
        # fault too. The price: a server failing one write for good stops its shard's
        # compaction (the backlog grows in /health/pipeline) instead of setting entries aside.
        1,  # InternalError
        6,  # HostUnreachable
        7,  # HostNotFound
        24,  # LockTimeout
        46,  # LockBusy
        50,  # MaxTimeMSExpired
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        112,  # WriteConflict
        133,  # FailedToSatisfyReadPreference
        134,  # ReadConcernMajorityNotAvailableYet
        189,  # PrimarySteppedDown
        202,  # NetworkInterfaceExceededTimeLimit
        262,  # ExceededTimeLimit
        365,  # TemporarilyUnavailable
        9001,  # SocketException
        10058,  # LegacyNotPrimary
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)


def is_transient(error: BaseException) -> bool:
    """Whether `error` is a condition of the server that a retry may not meet: unreachable,
    stepping down, busy, too slow, a write concern not confirmed (the write may be rolled
    back), a code of TRANSIENT_CODES or a label of TRANSIENT_LABELS. A bulk write error is
    transient when any of its errors is."""
    if isinstance(error, ConnectionFailure | WriteConcernError):
        return True
    if not isinstance(error, OperationFailure):
        return False
    if any(error.has_error_label(label) for label in TRANSIENT_LABELS):
        return True
    if isinstance(error, BulkWriteError):
        details = error.details
        return bool(details.get("writeConcernErrors")) or any(
            write_error.get("code") in TRANSIENT_CODES for write_error in details.get("writeErrors", [])
        )
    return error.code in TRANSIENT_CODES
