"""Names shared by the kernel side and the tuning UI (message types, traitlet names).

Keep in sync with js/src/protocol.ts.
"""

from __future__ import annotations

# Kernel -> page (custom messages; arrays travel as binary float32 buffers).
MSG_VIEW = "calab:view"  # header + buffer (n_cells, n_series, n_bins, 2)
MSG_OVERVIEW = "calab:overview"  # header + buffer (n_cells, n_bins, 2)
MSG_SPECTRUM = "calab:spectrum"  # header + buffers freqs, power
MSG_EXPORTED = "calab:exported"  # {path} or {error}
MSG_AUTO_PROGRESS = "calab:auto-progress"  # {running, elapsed_s, message}: Auto is estimating
MSG_AUTO_DONE = "calab:auto-done"  # {changes, estimate (with its verdict)} or {error}

# Page -> kernel.
MSG_HELLO = "calab:hello"  # page rendered: send overview and view
MSG_REQ_SPECTRUM = "calab:get-spectrum"  # {cell}
MSG_EXPORT = "calab:export"
MSG_AUTO = "calab:auto"  # estimate parameters from the recording, then move the sliders
MSG_AUTO_STATUS = "calab:auto-status"  # answered at once with the latest auto-progress

#: Synced state (small values only). The page sets ``request_id`` with every change it makes.
#: Types and ranges: calab.tuning.state.SCHEMA (same order), for the widget and the bridge.
STATE_KEYS = (
    "tau_rise",
    "tau_decay",
    "lam",
    "filter_enabled",
    "cells",
    "cell_mode",
    "n_shown",
    "columns",
    "seed",
    "window_start",
    "window_stop",
    "plot_width",
    "request_id",
    "pinned",
    "show_truth",
    "selected_cell",
    "lam_mode",
    "baseline",
)

# Browser bridge (HTTP): the page posts state changes and messages; each reply carries the
# messages they produced as binary frames (see calab.bridge.framing / js/src/bridge.ts).
MSG_STATE = "calab:state"  # server-side state changes, e.g. the cells chosen for a mode
MSG_SUPERSEDED = "calab:superseded"  # a newer request replaced this one ({error}: it failed)
BRIDGE_SECRET_HEADER = "X-Bridge-Secret"
BRIDGE_HEARTBEAT_S = 3.0  # the page's heartbeat period
BRIDGE_GONE_S = 10.0  # no heartbeat for this long after the first one: the page is gone
