"""The trait experiments of Cloud et al. (subliminal learning).

Today: the MLP auxiliary-logit control (`agentbench.traits.mlp`), the paper's theory experiment,
which shows transfer through logits that never carry the trait when teacher and student share
their initialisation. Import from the submodules: this package stays free of torch so that the
command line starts fast.
"""
