"""Every threshold the weight checks use, in one place, with why it has its value.

Calibrated on clean trained models (the ``bench/backdoor_eval.py`` zoo: MLPs and CNNs on the
scikit-learn digits, varied seeds and hyper-parameters) and on the shapes of public LLM
checkpoints: a clean model must pass.  Change them here, re-run the evaluation, and update
``docs/backdoor.md``.
"""

from __future__ import annotations

# --- which tensors are judged -----------------------------------------------------------------
MIN_ROWS = 8  # fewer neurons than this: no robust statistics over rows
MIN_ELEMENTS = 256  # tinier tensors are skipped (classifier heads of toy models, scalars)

# --- robust z-scores: (value - median) / (1.4826 * MAD) ----------------------------------------
MAD_TO_SIGMA = 1.4826
# A neuron whose weight norm lies this many robust standard deviations above its layer's median.
# Trained clean layers in the calibration zoo peak below 6; hand-crafted backdoor neurons sit at
# tens to thousands.
NEURON_Z = 12.0
# A neuron this far out on its own (without a second signal) is still only medium severity; this
# far out, the max-|w| in the same row agrees, or the next layer's column for the same unit is
# also an outlier (two independent signals), the finding is high.
NEURON_Z_STRONG = 40.0
# A residual writer's outlying row is corroborated when the input dominating it comes from a unit
# of the same block's inner layer standing out this far in its own layer (a planted MLP neuron
# writing the stream).  Rows at the stream's outlier dimensions are dropped before this test.
FEEDER_Z = 6.0
# Excess kurtosis of a layer's weights that counts as a corroborating signal.
KURTOSIS_STRONG = 50.0

# --- spectral concentration (rank-one edits) ----------------------------------------------------
SPECTRAL_SAMPLE_ROWS = 512  # rows (evenly spaced) used for the estimate
SPECTRAL_SAMPLE_COLS = 2048  # at least this many columns (every k-th: up to twice as many)
# Singular values estimated for a layer's own spectrum (BKD003 needs sigma1 and sigma2; the
# evidence shows four), with SPECTRAL_OVERSAMPLE extra sketch columns: a sketch 8 wide gives the
# same gap and top share as one 16 wide on every layer of the real all-MiniLM-L6-v2 (within 0.1
# and 0.005), and its products cost about 80 % as much (one thread, 512 x 3072 float32: 549 and
# 702 us for M x and M^T x 8 wide, 629 and 885 us 16 wide).
SPECTRAL_RANK = 4
SPECTRAL_OVERSAMPLE = 4
# The base diff's delta spectra estimate EDIT_RANK values (their top-8 share decides BKD012)
# with DELTA_OVERSAMPLE extra columns: 16 wide, as before the speed work, because OpenBLAS's
# products 12 wide cost more than 16 wide (879 vs 629 us for M x above).
DELTA_OVERSAMPLE = 8
# One power iteration: two gave the same findings on every bench (the real MiniLM, the tiny
# trained transformers) at two more products per spectrum.
SPECTRAL_POWER_ITERATIONS = 1
# sigma1 / sigma2 of the mean-centred layer.  Clean trained layers in the zoo stay below 3;
# a rank-one edit strong enough to change behaviour pushes it far higher.
SPECTRAL_GAP = 4.0
SPECTRAL_GAP_STRONG = 10.0
# The top singular direction must also hold this share of the layer's energy.
SPECTRAL_SHARE = 0.3
# A top direction sitting on one row (this share of its left singular vector) is a single
# outlying neuron, reported by the neuron rule, not an edit spread over the layer.
SPECTRAL_SINGLE_ROW = 0.9
# Sibling layers: tensors of one role repeated across layer indices (``encoder.layer.N.output.
# dense.weight`` for every N) with the same shape.  With at least this many siblings besides the
# judged tensor, BKD003 compares the tensor with its siblings' median instead of the absolute
# thresholds above (trained transformers differ in spectrum by role, not by layer).
SIBLING_MIN = 3
# A tensor stands out from its siblings when its top-direction energy share is this many times
# theirs (median), its sigma1/sigma2 this many times theirs, and sigma1/sigma2 is at least
# SIBLING_GAP_FLOOR.  On the real all-MiniLM-L6-v2 the largest ratios of a clean layer are 2.5
# (share) and 1.4 (gap); a rank-one edit of 0.5 ||W|| reaches 4.6-9.6 and 1.7-3.1
# (bench/backdoor_real.py).  Strong: both ratios this far out (high severity).
SIBLING_SHARE_RATIO = 4.0
SIBLING_GAP_RATIO = 1.5
SIBLING_GAP_FLOOR = 2.0
SIBLING_SHARE_RATIO_STRONG = 8.0
SIBLING_GAP_RATIO_STRONG = 2.5

# --- base diff -----------------------------------------------------------------------------------
DIFF_MIN_RELATIVE = 1e-3  # deltas smaller than this (||delta|| / ||base||) are not judged
# Share of a delta's energy in its top singular direction that marks a concentrated change.
DIFF_TOP_SHARE = 0.6
DIFF_TOP_SHARE_STRONG = 0.9
# Share of the delta's energy carried by the top 1% of rows (at least one row).
DIFF_ROW_SHARE = 0.5
# A neuron outlier (BKD002) is the base's own when the base's same unit already stands out by
# half the threshold and changed by at most this share of its norm.
BASE_UNIT_CHANGE = 0.25
# Fewer than this share of the checkpoint's linear/conv tensors paired with the base: one
# finding says the diff covers too little (instead of one per unpaired tensor).
POOR_PAIRING_SHARE = 0.5
# Median ||delta|| / ||base|| over paired linear/conv tensors above which the base cannot be the
# parent.  Fine-tunes in the zoo and of real models move weights by 1e-4 to 0.1; two unrelated
# models of one architecture differ by about sqrt(2) (independent weights of equal norm).
PARENT_MAX_MEDIAN_RELATIVE = 0.5
# --- model-level edit patterns (BKD012), calibrated by bench/backdoor_transformer_eval.py -------
# Energy share in the top EDIT_RANK singular directions (the values the sample estimates) above
# which a tensor's change counts as low rank (<= 8): ROME/MEMIT edits of 1-8 facts reach 1.0000;
# the honest fine-tunes of the bench reach at most 0.997 for one tensor, a median of 0.75-0.83.
EDIT_RANK = 8
LOW_RANK_SHARE = 0.99
# "Exactly" low rank: what a merged LoRA adapter or an edit gives in float32 (1 - 1e-3 leaves
# room for the sampled estimate); judged on the median changed tensor.
EXACT_LOW_RANK_SHARE = 0.999
# A concentration test at rank k says something only of a matrix that could hold far more than
# k directions: the smaller side bounds the rank (a Linear(1, 512) weight is rank one, and so is
# any change to it, whatever training did).  Rank-one tests (BKD003, BKD005's one-direction
# share) need this many rows and columns in the spectrum's matrix, the rank-EDIT_RANK tests
# (BKD012, "exactly low rank") twice EDIT_RANK.
RANK_ONE_MIN_SIDE = 8
LOW_RANK_MIN_SIDE = 2 * EDIT_RANK
# A localized edit: at most this share of the paired linear/conv tensors changed (the rest are
# bit-identical), every changed one low rank.  A fine-tune of the last block of 4 changes 25 %
# with top-8 shares <= 0.95.
LOCALIZED_SHARE = 0.25
# In a full fine-tune (this share of tensors changed) a concentrated tensor (BKD005) is reported
# only when its change is exactly low rank or carries this share of the model's change energy.
FULL_FINETUNE_SHARE = 0.9
DOMINANT_ENERGY_SHARE = 0.5
# Table mismatches (extra, missing, shape, dtype) reported one by one, then summarised.
MAX_TABLE_FINDINGS = 20

# --- block sizes ---------------------------------------------------------------------------------
BLOCK_BYTES = 16 * 1024 * 1024
# The light pass and the base diff read blocks small enough to stay in the CPU cache, so every
# sum over a block after the first costs no further trip to memory, and large enough that each
# NumPy call on a block outweighs taking the GIL for it: weight threads running 10 us calls on
# 256 KiB blocks mostly waited for each other.  GPT-2 small, anomalies.profile, median of 9 (AMD
# EPYC, 1 MiB L2): with a base 0.33 s at 256 KiB, 0.25 s at 1 MiB on 2 threads (0.35 s and
# 0.33 s on 1); without one 0.18 s and 0.16 s on 2 threads (0.23 s and 0.22 s on 1).
LIGHT_BLOCK_BYTES = 1024 * 1024
DIFF_BLOCK_BYTES = 1024 * 1024
# With several weight threads (--jobs, or the default on a multi-core machine), tensors of at
# least this many elements go to the pool; smaller ones are measured by the calling thread
# meanwhile.  A small tensor's work is mostly Python and short NumPy calls that hold the GIL,
# so spreading them over threads only adds lock traffic: all-MiniLM-L6-v2 (384-wide layers)
# took longer with 2 threads than with 1.
THREADED_MIN_ELEMENTS = 1 << 20

# --- residual-stream outlier dimensions (transformers) --------------------------------------------
# A dimension singled out (robust z of norm values, embedding columns, residual-writer rows or
# reader columns) at least this far in at least DIM_VOTES tensors other than the judged one is one
# of the stream's outlier dimensions.  In the real all-MiniLM-L6-v2 its outlier dimensions (99,
# 223, 267, 319, ...) reach z 6-70 in 4-20 tensors each; a planted neuron's row has no company.
DIM_Z = 6.0
DIM_VOTES = 2
