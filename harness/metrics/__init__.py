"""Metrics on evaluator features and attribute labels (DESIGN.md section 6); never on the conditioning CLIP.

Import from the submodules (`distribution`, `diversity`, `bootstrap`, `clip_score`, `table`): importing them
all here would make every light user (the report's bootstrap) pay for torchmetrics and open_clip.
"""
