"""Thresholds of the activation probes, calibrated on the clean models of the evaluation zoo
(``bench/backdoor_eval.py``); see ``docs/backdoor.md``."""

from __future__ import annotations

# --- maximum-margin detection (MM-BD) -------------------------------------------------------------
MARGIN_STEPS = 150  # optimisation steps per class
MARGIN_STARTS = 4  # random starting inputs per class (the best margin counts)
MARGIN_LR = 0.1
# Robust z (median/MAD over classes) of the largest achievable margin.
MARGIN_Z = 3.5

# --- single-neuron stimulation --------------------------------------------------------------------
STIMULUS_INPUTS = 64  # typical inputs each unit is stimulated on
# Stimulus: this multiple of the largest activation any unit of the layer reached on typical
# inputs (a value a natural input can produce, not an arbitrary huge one).
STIMULUS_SCALE = 1.0
# A unit whose stimulation sends at least this share of inputs to one class ...
FLIP_RATE = 0.9
# ... while the layer's median unit flips fewer than this share, is reported.
FLIP_MEDIAN_MAX = 0.3

# --- resources ------------------------------------------------------------------------------------
DEFAULT_TIME_BUDGET = 120.0  # seconds for both probes together
MAX_UNITS_PER_LAYER = 4096  # wider layers are sampled evenly
