"""Packaging levels, code states and batch statuses: the numbers and names stored in the codes tables.

Public: other domains compare a code's level or state against these (the codes models import them).
No I/O.
"""

from __future__ import annotations

# Packaging levels.
ITEM, CASE, PALLET = 1, 2, 3
LEVEL_NAMES = {ITEM: "item", CASE: "case", PALLET: "pallet"}
LEVELS_BY_NAME = {name: level for level, name in LEVEL_NAMES.items()}

# Code states; the numbers are stored, the names are the API's.
GENERATED, COMMISSIONED, PACKED, SHIPPED, RECEIVED, IN_STORE, SOLD, OPENED, VOIDED, DECOMMISSIONED = range(10)
STATE_NAMES = {
    GENERATED: "generated",
    COMMISSIONED: "commissioned",
    PACKED: "packed",
    SHIPPED: "shipped",
    RECEIVED: "received",
    IN_STORE: "in_store",
    SOLD: "sold",
    OPENED: "opened",
    VOIDED: "voided",
    DECOMMISSIONED: "decommissioned",
}

# Batch lifecycle.
BATCH_REQUESTED = "requested"
BATCH_GENERATING = "generating"
BATCH_GENERATED = "generated"
BATCH_EXPORTED = "exported"
BATCH_VOIDED = "voided"
BATCH_FAILED = "failed"

# Words for screens (English source strings, translated by the i18n catalogs), by level and state name.
LEVEL_LABELS = {"item": "Item", "case": "Case", "pallet": "Pallet"}
STATE_LABELS = {
    "generated": "Generated",
    "commissioned": "Commissioned",
    "packed": "Packed",
    "shipped": "Shipped",
    "received": "Received",
    "in_store": "In store",
    "sold": "Sold",
    "opened": "Opened",
    "voided": "Voided",
    "decommissioned": "Decommissioned",
}
