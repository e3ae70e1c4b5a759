"""The wire protocol both sides import: key layout, codec, signing, status fields, output
entries and labels. ``coordinator`` and the subscriber use only what this package exports.

The Redis layout, with ``P`` the prefix: ``P:spec:ID`` (a sealed spec, TTL its remaining
lifespan), ``P:ids`` (set of published ids), ``P:version`` (bumped by every change),
``P:events`` (channel of sealed events), ``P:status:PROCESS`` (hash of status fields and
``_process``), ``P:processes`` (sorted set of heartbeats), ``P:claim:PROCESS`` (the id's
claim), ``P:output`` (the output stream), ``P:audit`` (the audit stream), ``P:pending``
(set of ids awaiting approval), ``P:pending:ID`` (hash: the sealed spec, who, key, at),
``P:exc:ID:*`` (an exception spec's counts and captures, see ``protocol.exceptions``) and
the fleet's statistics of a spec (``P:agg:ID``, ``P:stats:...``, ``P:distinct:...``; see
``aggregates``).
``docs/reference/redis-layout.md`` has it all.
"""

from __future__ import annotations

from diagnose_redis.protocol.aggregates import AGGREGATE_KINDS
from diagnose_redis.protocol.approval import (
    ALL,
    APPROVAL_WINDOW_SECONDS,
    ApprovalPolicy,
    instrument_type,
)
from diagnose_redis.protocol.audit import (
    ACTIONS,
    AUDIT_FIELDS,
    AUDIT_MAXLEN,
    decode_audit,
    encode_audit,
)
from diagnose_redis.protocol.codec import (
    MAX_MESSAGE_BYTES,
    MAX_NESTING,
    OPS,
    Opened,
    SealedSpec,
    countersign,
    decode_event,
    decode_spec,
    encode_event,
    encode_put,
    encode_spec,
    open_event,
    open_spec,
    seal_spec,
    unsealed_spec,
    unverified_put,
    unverified_spec,
)
from diagnose_redis.protocol.keyring import KEY_ID_PATTERN, MAX_KEYS, Key, Keyring, keyring
from diagnose_redis.protocol.keys import (
    HEARTBEAT_SECONDS,
    PROCESS_FIELD,
    SPEC_ID_PATTERN,
    STATUS_TTL_SECONDS,
    Keys,
    check_spec_id,
    client_name,
    cluster_prefix,
    expired_channel,
)
from diagnose_redis.protocol.labels import escape_glob, labels_in, parse_labels, selects
from diagnose_redis.protocol.output import (
    OUTPUT_FIELDS,
    OUTPUT_MAXLEN,
    decode_output,
    encode_output,
    output_maxlen,
)
from diagnose_redis.protocol.signing import MAX_SIGNATURES, secret_bytes
from diagnose_redis.protocol.status import (
    COUNTS,
    StatusField,
    applied_mark,
    decode_status_field,
    encode_status_field,
    with_counts,
)

__all__ = (
    "ACTIONS",
    "AGGREGATE_KINDS",
    "ALL",
    "APPROVAL_WINDOW_SECONDS",
    "AUDIT_FIELDS",
    "AUDIT_MAXLEN",
    "COUNTS",
    "HEARTBEAT_SECONDS",
    "KEY_ID_PATTERN",
    "MAX_KEYS",
    "MAX_MESSAGE_BYTES",
    "MAX_NESTING",
    "MAX_SIGNATURES",
    "OPS",
    "OUTPUT_FIELDS",
    "OUTPUT_MAXLEN",
    "PROCESS_FIELD",
    "SPEC_ID_PATTERN",
    "STATUS_TTL_SECONDS",
    "ApprovalPolicy",
    "Key",
    "Keyring",
    "Keys",
    "Opened",
    "SealedSpec",
    "StatusField",
    "applied_mark",
    "check_spec_id",
    "client_name",
    "cluster_prefix",
    "countersign",
    "decode_audit",
    "decode_event",
    "decode_output",
    "decode_spec",
    "decode_status_field",
    "encode_audit",
    "encode_event",
    "encode_output",
    "encode_put",
    "encode_spec",
    "encode_status_field",
    "escape_glob",
    "expired_channel",
    "instrument_type",
    "keyring",
    "labels_in",
    "open_event",
    "open_spec",
    "output_maxlen",
    "parse_labels",
    "seal_spec",
    "secret_bytes",
    "selects",
    "unsealed_spec",
    "unverified_put",
    "unverified_spec",
    "with_counts",
)
