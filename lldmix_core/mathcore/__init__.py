"""The pure math core: functions of numpy arrays, no I/O, importing nothing of ours.

Units: Δ and ℓ are mean log-likelihoods per domain (nats/token or nats/byte); weights are on the
simplex; KL between weight vectors in nats, Jensen–Shannon in bits; the model-map KL in nats/text
(converted to bits/byte by dividing by ln 2 and the mean bytes per text).
"""

from lldmix_core.mathcore.aggregate import aggregate_arithmetic, aggregate_geometric
from lldmix_core.mathcore.aggregate_variants import (
    aggregate_late,
    aggregate_weighted_geometric,
    late_step_mask,
    progress_step_weights,
    token_share_step_weights,
)
from lldmix_core.mathcore.calibrate import calibrated_delta
from lldmix_core.mathcore.divergence import (
    js_distance,
    js_distance_matrix,
    js_divergence_matrix,
    js_divergence,
    kl_categorical,
    overlap_accuracy,
    total_variation,
    weight_recovery,
)
from lldmix_core.mathcore.modelmap import (
    clip_bottom,
    clip_threshold,
    kl_matrix_pooled_clip,
    kl_pair_at_threshold,
    double_centre,
    kl_matrix,
    kl_pair,
    loglik_gap_bits_per_byte,
    nats_per_text_to_bits_per_byte,
)
from lldmix_core.mathcore.headroom import (
    Headroom,
    Ratio,
    cluster_bootstrap_median,
    fieller_interval,
    headroom,
    headroom_captured,
    min_detectable_effect,
    t_quantile,
)
from lldmix_core.mathcore.gram_conditioning import GramSolve, conditioned_gram_solve, gcv_ridge, gcv_score
from lldmix_core.mathcore.mixture_accounting import (
    cap_epochs,
    implied_epochs,
    intended_token_shares,
    realized_tokens,
    total_variation,
)
from lldmix_core.mathcore.phases import best_split, phase_starts, two_stage_phases, within_block_scatter
from lldmix_core.mathcore.recovery import (
    median_interval,
    recovery_ratio,
    recovery_ratios,
    recovery_summary,
    wilson_interval,
)
from lldmix_core.mathcore.temperature import annealed_tau, annealed_taus, tau_from_spread
from lldmix_core.mathcore.sampled import per_sample_log_ratio, sampled_kl_estimate, to_bits_per_byte
from lldmix_core.mathcore.schedule import lld_schedule
from lldmix_core.mathcore.stats import (
    PairedSummary,
    average_ranks,
    bootstrap_interval,
    mean_se,
    paired_difference,
    paired_summary,
    spearman,
    t_quantile_975,
)
from lldmix_core.mathcore.weights import (adjusted_weights, domain_means, gram_solve, lld_weights, resolve_tau,
                                         time_averaged_weights)

__all__ = [
    "adjusted_weights", "aggregate_arithmetic", "domain_means", "aggregate_geometric", "clip_bottom", "double_centre", "gram_solve",
    "js_distance", "js_distance_matrix", "js_divergence", "kl_categorical", "kl_matrix", "kl_pair", "lld_schedule",
    "lld_weights", "loglik_gap_bits_per_byte", "nats_per_text_to_bits_per_byte", "resolve_tau",
    # issue 13 estimator variants
    "aggregate_late", "aggregate_weighted_geometric", "annealed_tau", "annealed_taus", "best_split",
    "calibrated_delta", "conditioned_gram_solve", "gcv_ridge", "gcv_score", "GramSolve", "js_divergence_matrix",
    "late_step_mask", "median_interval", "progress_step_weights", "recovery_ratio", "recovery_ratios",
    "recovery_summary", "tau_from_spread", "token_share_step_weights", "phase_starts", "two_stage_phases", "wilson_interval",
    "within_block_scatter",
    # issue 25 mixture accounting
    "cap_epochs", "implied_epochs", "intended_token_shares", "realized_tokens", "total_variation",
    # issue 21 headroom statistics
    "Headroom", "Ratio", "cluster_bootstrap_median", "fieller_interval", "headroom", "headroom_captured",
    "min_detectable_effect", "t_quantile",
    "PairedSummary", "average_ranks", "bootstrap_interval", "mean_se", "spearman", "paired_difference", "paired_summary", "t_quantile_975",
    "per_sample_log_ratio", "sampled_kl_estimate", "to_bits_per_byte", "clip_threshold", "kl_matrix_pooled_clip", "kl_pair_at_threshold", "weight_recovery",
    # issue 25 overlap accuracy
    "overlap_accuracy", "total_variation", "time_averaged_weights",
]
