"""Imports every module's ORM models so that the one metadata (and Alembic) sees all tables."""

from zhongtai.authenticity import models as _authenticity_models  # noqa: F401
from zhongtai.authenticity import reports as _authenticity_reports  # noqa: F401
from zhongtai.catalog import models as _catalog_models  # noqa: F401
from zhongtai.channel import models as _channel_models  # noqa: F401
from zhongtai.channel import scan_models as _channel_scan_models  # noqa: F401
from zhongtai.codes import models as _codes_models  # noqa: F401
from zhongtai.core import models as _core_models  # noqa: F401
from zhongtai.core.models import Base
from zhongtai.flashsale import models as _flashsale_models  # noqa: F401
from zhongtai.ledger import models as _ledger_models  # noqa: F401
from zhongtai.lottery import models as _lottery_models  # noqa: F401
from zhongtai.members import duplicate_models as _members_duplicate_models  # noqa: F401
from zhongtai.members import import_models as _members_import_models  # noqa: F401
from zhongtai.members import loyalty_models as _members_loyalty_models  # noqa: F401
from zhongtai.members import models as _members_models  # noqa: F401
from zhongtai.members import segment_models as _members_segment_models  # noqa: F401
from zhongtai.rewards import models as _rewards_models  # noqa: F401
from zhongtai.sales import models as _sales_models  # noqa: F401
from zhongtai.trace import log_models as _trace_log_models  # noqa: F401
from zhongtai.trace import models as _trace_models  # noqa: F401

__all__ = ["Base"]
