"""Traceability: EPCIS 2.0 capture and query, event hashes, and the tamper-evident Merkle log.

The log (`merkle`, `log`, `checkpoint`, `log_api`) keeps, per tenant, an append-only RFC 9162 tree
whose leaves are the stored events' hash IDs, signs its heads as C2SP checkpoints with the tenant's
Ed25519 key, and serves inclusion and consistency proofs that anyone can check offline
(`zhongtai verify`, `static/trace-verify.js`). See docs/trace.md.
"""
