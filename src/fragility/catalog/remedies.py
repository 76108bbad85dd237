"""The feature-space remedies a study may apply to a trained run's embeddings."""

# Feature-space methods, applied to a trained run's embeddings ({run}/remedies/{name}/). Their
# parameters are checked against config/schema.yaml's $defs.remedy_params.{method}.
REMEDY_METHODS = ("eos", "eos_authors", "ros", "smote", "crt", "tau_norm", "logit_adjust")
