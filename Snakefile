# fragility: why CNNs trained on class-imbalanced images fail on minority classes.
# Stages: data -> splits -> training -> embeddings -> analysis -> remedies.
import sys

from snakemake.utils import min_version

from fragility.workflow.config import study_config
from fragility.errors import ConfigError

min_version("8.0")

# A study is what its config file says: the file given with --configfile is the whole study
# (one that adds to another names it with `extends:`), config.yaml when none is given, and
# --config values last. Snakemake alone would lay any --configfile over config.yaml, so a
# preset without `runs` would train the default study's.
try:
    _study, _study_files = study_config(
        workflow.overwrite_configfiles, workflow.config_settings.config, "config.yaml"
    )
except ConfigError as error:
    sys.exit(f"config error: {error}")
config.clear()
config.update(_study)
workflow.configfiles.extend(str(f) for f in _study_files if str(f) not in workflow.configfiles)


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/splits.smk"
include: "rules/training.smk"
include: "rules/embeddings.smk"
include: "rules/external.smk"
include: "rules/analysis.smk"
include: "rules/remedies.smk"
include: "rules/curves.smk"
include: "rules/cluster.smk"


rule all:
    input:
        get_all_targets(),
    default_target: True
