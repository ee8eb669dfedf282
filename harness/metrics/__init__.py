"""Metrics on evaluator features and attribute labels (docs/design.md, section 5); never on the conditioning CLIP.

Import from the submodules (`catalogue`, `distribution`, `diversity`, `intervals`, `clip_score`, `table`): importing
them all here would make every light user (the report's interval engine) pay for torchmetrics and open_clip.
"""
