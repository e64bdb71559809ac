"""The trait experiments of Cloud et al. (subliminal learning).

- `agentbench.traits.tasks`: the single-turn tasks (number sequences, code, chain of thought:
  `make_task`), their strict filters, and the trait evaluations (favourite animal or tree,
  misalignment rated by a judge model: `make_eval`); `agentbench run` runs them as suite cells
  (traits `animal-preference`, `tree-preference`, `misalignment`).
- `agentbench.traits.mlp`: the MLP auxiliary-logit control, the paper's theory experiment
  (suite trait `mlp-aux-logits`, or `agentbench traits mlp`).

Import from the submodules: this package stays free of torch so that the command line starts
fast.
"""
