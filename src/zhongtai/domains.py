"""Loads every module that registers job handlers, permissions or console navigation.

The web app and `zhongtai worker` call `load_all()` so that both know every job topic.
"""

from __future__ import annotations

import importlib

DOMAIN_MODULES: tuple[str, ...] = (
    "zhongtai.core.api",
    "zhongtai.authenticity.api",
    "zhongtai.authenticity.h5",
    "zhongtai.authenticity.service",
    "zhongtai.authenticity.reports_api",
    "zhongtai.catalog.api",
    "zhongtai.channel.api",
    "zhongtai.codes.api",
    "zhongtai.codes.generation",
    "zhongtai.trace.capture",
    "zhongtai.trace.epcis_api",
    "zhongtai.trace.log",
    "zhongtai.trace.log_api",
    "zhongtai.trace.producers",
    "zhongtai.trace.trace_api",
    "zhongtai.members.api",
    "zhongtai.lottery.api",
    "zhongtai.flashsale.api",
    "zhongtai.ledger.api",
    "zhongtai.rewards.api",
    "zhongtai.rewards.h5_pages",
    "zhongtai.sales.api",
)


def load_all() -> None:
    for name in DOMAIN_MODULES:
        importlib.import_module(name)
