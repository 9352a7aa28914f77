"""The state table: one set of rules for the widget and the bridge."""

from __future__ import annotations

import numpy as np
import pytest

from calab import _protocol as P
from calab.params import Params
from calab.tuning.state import (
    MAX_SHOWN,
    READ_ONLY,
    SCHEMA,
    Recording,
    Settings,
    validate_changes,
)

REC = Recording(fs=30.0, n_cells=100, n_frames=5000)


def test_table_covers_exactly_the_protocol_keys():
    assert tuple(SCHEMA) == P.STATE_KEYS
    assert not set(READ_ONLY) & set(SCHEMA)


def test_good_values_are_normalized():
    got = validate_changes(
        {
            "tau_rise": 1,
            "lam": 0,
            "cells": [3, 3, 1],
            "pinned": {"tau_rise": 0.05, "tau_decay": 0.5, "lam": 1},
            "selected_cell": -1,
            "window_stop": 5000,
        },
        REC,
    )
    assert got == {
        "tau_rise": 1.0,
        "lam": 0.0,
        "cells": [3, 1],
        "pinned": {"tau_rise": 0.05, "tau_decay": 0.5, "lam": 1.0, "filter_enabled": False},
        "selected_cell": -1,
        "window_stop": 5000,
    }
    assert isinstance(got["tau_rise"], float)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"tau_rise": True}, TypeError, "tau_rise must be a number"),
        ({"tau_decay": 0}, ValueError, "tau_decay must be a positive"),
        ({"lam": float("nan")}, ValueError, "lam must be a finite"),
        ({"lam": "1"}, TypeError, "lam"),
        ({"filter_enabled": "no"}, TypeError, "filter_enabled must be True or False"),
        ({"filter_enabled": 1}, TypeError, "filter_enabled"),
        ({"seed": -1}, ValueError, r"seed out of range: must be an integer in 0\.\."),
        ({"n_shown": MAX_SHOWN + 1}, ValueError, "n_shown"),
        ({"cells": list(range(MAX_SHOWN + 1))}, ValueError, "cells must list 1 to 64"),
        ({"cells": []}, ValueError, "cells must list 1 to 64"),
        ({"cells": [100]}, ValueError, r"cells\[0\] out of range"),
        ({"cells": "012"}, TypeError, "cells must be a list"),
        ({"cell_mode": "all"}, ValueError, "cell_mode must be one of"),
        ({"window_start": 5001}, ValueError, "window_start"),
        ({"plot_width": 0}, ValueError, "plot_width"),
        ({"selected_cell": 100}, ValueError, "selected_cell"),
        ({"pinned": {"tau_rise": 0.05}}, ValueError, "pinned must be None or a dict"),
        ({"pinned": {"tau_rise": 0.5, "tau_decay": 0.5, "lam": 0}}, ValueError, "smaller"),
        ({"pinned": 3}, TypeError, "pinned"),
        ({"fs": 1e9}, ValueError, "fs is fixed by the recording"),
        ({"n_cells": 10**6}, ValueError, "n_cells is fixed"),
        ({"bogus": 1}, ValueError, "unknown state key 'bogus'"),
    ],
)
def test_bad_values_name_the_key(changes, error, match):
    with pytest.raises(error, match=match):
        validate_changes(changes, REC)


def test_changes_must_be_a_mapping():
    with pytest.raises(TypeError, match="mapping"):
        validate_changes([("lam", 1.0)], REC)  # type: ignore[arg-type]


def test_settings_resolve_to_the_one_parameter_type() -> None:
    fs, noise = 30.0, np.array([0.5, 2.0, 0.0])
    s = Settings(0.05, 0.5, 1.5, True, "per_cell", "drift")
    p = s.to_params(fs, noise)
    assert isinstance(p, Params)
    assert p == Params(fs, 0.05, 0.5, [0.75, 3.0, 0.0], filter_enabled=True, baseline="drift")
    assert Settings(0.05, 0.5, 1.5).to_params(fs) == Params(fs, 0.05, 0.5, 1.5)


@pytest.mark.parametrize(
    ("settings", "noise", "match"),
    [
        (Settings(0.5, 0.5, 0.1), None, r"tau_rise \(0.5 s\) must be smaller than tau_decay"),
        (Settings(0.05, 0.5, -1.0), None, "lam must be a finite number >= 0"),
        (Settings(0.05, 0.5, 0.1, baseline="linear"), None, "baseline must be"),
        (Settings(0.05, 0.5, 0.1, lam_mode="cells"), None, "lam_mode must be"),
        (Settings(0.05, 0.5, 0.1, lam_mode="per_cell"), None, "needs the noise SD"),
    ],
)
def test_bad_settings_raise_the_parameter_types_errors(settings, noise, match) -> None:
    with pytest.raises(ValueError, match=match):
        settings.to_params(30.0, noise)
