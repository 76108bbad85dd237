"""What runs the pipeline: the study a config asks for (:mod:`.config`), the stages as
file-in, file-out functions (:mod:`.stages`), what every workflow job shares
(:mod:`.jobs`), the resources a job asks a cluster for (:mod:`.resources`, :mod:`.cluster`)
and the provenance of a run (:mod:`.provenance`)."""
