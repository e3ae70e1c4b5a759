"""Instruments: what a probe does when it fires (log, send a metric, keep a record).

One module each: ``base`` (Instrument, the extension point), ``log``, ``metrics``
(hist and incr), ``snapshot``, ``exception``, ``stats`` (stats and distinct), ``testing``.
Their names are re-exported here, as the original library had them in one
``diagnose.instruments`` module.
"""

from __future__ import annotations

from typing import Any

from diagnose.instruments.base import Instrument, omitted
from diagnose.instruments.exception import ExceptionInstrument
from diagnose.instruments.log import LogInstrument
from diagnose.instruments.metrics import (
    HistogramInstrument,
    IncrementInstrument,
    StatsdInstrumentBase,
)
from diagnose.instruments.snapshot import SnapshotInstrument
from diagnose.instruments.stats import DistinctInstrument, StatsInstrument
from diagnose.instruments.testing import ProbeTestInstrument

__all__ = (
    "DistinctInstrument",
    "ExceptionInstrument",
    "HistogramInstrument",
    "IncrementInstrument",
    "Instrument",
    "LogInstrument",
    "ProbeTestInstrument",
    "SnapshotInstrument",
    "StatsInstrument",
    "StatsdInstrumentBase",
    "omitted",
    "statsd",
)

#: The statsd client hist and incr send to: set it to your own (an object with
#: ``histogram(name, value, tags=...)`` and ``increment(name, value, tags=...)``);
#: None means our DogStatsD client (see ``diagnose.configure_statsd``).
statsd: Any = None
