"""Judge robustness probes: a run over a sample of responses and perturbed copies of them
(neutral, injected, causal), and its report of how the judge's verdicts moved."""
