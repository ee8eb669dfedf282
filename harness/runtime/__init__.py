"""The machinery that runs the stages: the pipeline and its context, the artifact cache, worker processes and
distributed training, progress, devices, tracking and the checks made before a run starts. The stages
themselves and the two axes of the study (conditioning modes, sampling arms) live beside this package."""
