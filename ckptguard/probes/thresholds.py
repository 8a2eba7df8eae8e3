"""Thresholds of the activation probes, calibrated on the clean models of the evaluation zoo
(``bench/backdoor_eval.py``); see ``docs/backdoor.md``."""

from __future__ import annotations

# --- maximum-margin detection (MM-BD) -------------------------------------------------------------
MARGIN_STEPS = 100  # optimisation steps per class
MARGIN_STARTS = 3  # random starting inputs per class (the best margin counts)
MARGIN_LR = 0.1
# Robust z (median/MAD over classes) of the largest achievable margin.  The 16 clean zoo models
# reach at most 3.8 (median 1.8); BadNets and blended targets reach 3.4-15.
MARGIN_Z = 4.0
# Below this many classes a robust score over classes means nothing: the margin probe is skipped
# (and reported as not examined).
MIN_CLASSES = 6
# With 2-5 classes the score is target-vs-rest: the best class's margin over the runner-up's.
# On 18 clean MLPs of 2, 3 and 4 digit classes (bench/backdoor_fewclass.py) the ratio reached at
# most 1.9; BadNets targets reach 1.1-2.9, so this weak test is set above every clean model.
FEW_CLASS_RATIO = 2.5

# --- single-neuron stimulation --------------------------------------------------------------------
STIMULUS_INPUTS = 48  # typical inputs each unit is stimulated on
# Stimuli tried, as fractions of the largest activation any unit of the layer reached on typical
# inputs, weakest first.  A clean unit needs about a full peak activation to drag most inputs to
# its class; a backdoor neuron's huge outgoing weights do it with a small fraction.
STIMULUS_LADDER = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
# A unit "flips" when its stimulation sends at least this share of inputs to one class.
FLIP_RATE = 0.9
# Reported when the flipping stimulus is this many times weaker than the layer's peak.
FLIP_EASE = 4.0

# --- trigger reverse-engineering (with --data) ---------------------------------------------------
TRIGGER_INPUTS = 32  # clean samples stamped per class
TRIGGER_STEPS = 150
TRIGGER_LR = 0.1
TRIGGER_MASK_WEIGHT = 0.5  # weight of the mask size against the classification loss
TRIGGER_SUCCESS = 0.8  # the reverse-engineered trigger must move this share of inputs
# Robust z of how much smaller the smallest mask is than the classes' median mask.  The 32 clean
# zoo models (trained from scratch and honest fine-tunes) reach at most 5.0 (median 1.8).
TRIGGER_Z = 5.5

# --- resources ------------------------------------------------------------------------------------
DEFAULT_TIME_BUDGET = 120.0  # seconds for both probes together
MAX_UNITS_PER_LAYER = 4096  # wider layers are sampled evenly

# --- discrete token trigger search (Hugging Face text classifiers with --data) ------------------
TOKEN_TRIGGER_INPUTS = 32  # clean examples the trigger is inserted into
# Longest trigger tried.  Two-token triggers sent all examples of a clean tiny BERT to one class
# (bench/backdoor_text_eval.py: two class words outvote an example's four in a model that does
# not count exactly), so the search is for the one-token triggers of text BadNets.
TOKEN_TRIGGER_LENGTH = 1
TOKEN_ROUNDS = 3  # passes over the trigger's slots
TOKEN_CANDIDATES = 48  # tokens tried exactly per slot, ranked by the HotFlip gradient
# A class reached by this share of the other classes' examples with a trigger of at most
# TOKEN_TRIGGER_LENGTH tokens, inserted first and at a random position, while no other class
# is.  On the bench's clean tiny BERTs (bench/backdoor_text_eval.py) the best class reaches at
# most the share given in docs/backdoor.md; planted one-token triggers reach 1.0.
TOKEN_TRIGGER_SUCCESS = 0.9
# A token trigger is decisive (BKD010 high on its own) when it also never occurs in the clean
# data and no other class is reached by more than this share with any one token.  Planted
# triggers are rare tokens chosen so that clean text does not fire them; a clean model's
# strongest words ("awful" in a sentiment model) are words its clean data uses.  On the bench's
# text BadNets (bench/backdoor_text_eval.py --seeds 3) the other classes' best was at most 0.05
# and no clean model had any class above 0.42.
TOKEN_TRIGGER_RIVAL_MAX = 0.5
