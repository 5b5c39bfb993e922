"""Presenters: pure functions from an observation (plain data) to what a panel shows.

Each ``*_panel`` function returns a template context, or None when the engine has nothing for that
panel yet (a missing snapshot key renders nothing). The code lives in ``dashboard/panels/``, one
module per panel family; this module names them all in one place, for the frame builder
(``fragments.py``) and for everything that imported them from here.
"""

from __future__ import annotations

from dashboard.panels.cells import isolation_reads, render_cell, window_cells
from dashboard.panels.common import LANE_WINDOW, SPEEDS, ghost_id, slug, speed_label
from dashboard.panels.faults import (
    FaultOption,
    consumer_fault_options,
    fault_options,
    stall_ms,
    transaction_fault_options,
)
from dashboard.panels.internal import (
    CLIENT_TXN_STATES,
    INTERNAL_DECODERS,
    TXN_STATE_WORDS,
    client_txn_state,
    decode_offsets_record,
    decode_txn_state_record,
    internal_log_panel,
)
from dashboard.panels.lanes import (
    duplicates_by_partition,
    lane_cells,
    lane_columns,
    lane_cursors,
    lane_ghosts,
    lane_header,
    lane_partitions,
    lane_reads,
    unlaned_note,
)
from dashboard.panels.run import (
    brokers_panel,
    controls_panel,
    events_panel,
    extras_panel,
    faults_panel,
    header_panel,
    producers_panel,
    scrubber_panel,
)
from dashboard.panels.story import narration_panel
from dashboard.panels.verdict import ANOMALIES_SHOWN, verdict_panel, where_label

__all__ = [
    "ANOMALIES_SHOWN",
    "CLIENT_TXN_STATES",
    "INTERNAL_DECODERS",
    "LANE_WINDOW",
    "SPEEDS",
    "TXN_STATE_WORDS",
    "FaultOption",
    "brokers_panel",
    "client_txn_state",
    "consumer_fault_options",
    "controls_panel",
    "decode_offsets_record",
    "decode_txn_state_record",
    "duplicates_by_partition",
    "events_panel",
    "extras_panel",
    "fault_options",
    "faults_panel",
    "ghost_id",
    "header_panel",
    "internal_log_panel",
    "isolation_reads",
    "lane_cells",
    "lane_columns",
    "lane_cursors",
    "lane_ghosts",
    "lane_header",
    "lane_partitions",
    "lane_reads",
    "narration_panel",
    "producers_panel",
    "render_cell",
    "scrubber_panel",
    "slug",
    "speed_label",
    "stall_ms",
    "transaction_fault_options",
    "unlaned_note",
    "verdict_panel",
    "where_label",
    "window_cells",
]
