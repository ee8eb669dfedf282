"""The sampling wing (docs/design.md, section 5): every trained mode x sampling arm x guidance scale, K samples
for each held-out prompt, from paired noise, judged by the evaluator.

- `cell`: the plan, cut into cells, each one line (`harness.line.Line`) of one decoder at one guidance scale
  over a chunk of prompts;
- `vectors`: where the CLIP vectors a mode reads at sampling come from (text, prior draws, the oracle);
- `arms/`: the second axis beside the mode, one module per arm with one signature (`SamplingArm`);
- `runner`: samples and judges a cell, saves it, loads cells back;
- `load`: the runner and judge rebuilt from the context's artifacts (in worker processes too);
- `stage`: the sweep artifact, resumable cell by cell.
"""
