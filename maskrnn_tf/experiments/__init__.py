"""Experiment drivers built on the project's CLIs: the paper's Table 2 ablation, the finetuning table and the
selection of finetuning settings on held-out sequences."""
from maskrnn_tf.experiments.ablation_variants import (ABLATION_VARIANTS, AblationVariant, ablation_markdown,
                                                      read_scores, select_variants, training_variant,
                                                      variant_overrides)

__all__ = ["ABLATION_VARIANTS", "AblationVariant", "ablation_markdown", "read_scores", "select_variants",
           "training_variant", "variant_overrides"]
