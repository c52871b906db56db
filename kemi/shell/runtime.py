"""This Kamailio worker's long-lived parts: its settings, the configuration snapshot, the CDR spool, the live view
and the edge. Made once when Kamailio loads the Python routing (before it forks its workers)."""

from __future__ import annotations

import KSR

from . import ksr_read as read
from .cdr_spool import CdrSpool
from .ksr_edge import Edge
from .settings import ShellSettings
from .snapshot_holder import SnapshotHolder

SETTINGS = ShellSettings.from_env()
SNAPSHOTS = SnapshotHolder(SETTINGS.snapshot_path, SETTINGS.snapshot_check_interval, log=lambda m: KSR.info(m + "\n"))
SPOOL = CdrSpool(SETTINGS.spool_dir)
LIVE = read.KsrLiveView()
EDGE = Edge(SETTINGS.edge, SPOOL)
