"""Embedded-model builds: the recipes behind the model registry's names.

Each module builds one family of models into a directory (config, safetensors, tokenizer):
`tiny` (a random Llama and the ChatML tokenizer trainer), `tiny_agent` (pre-trained on scripted
agent episodes, with `pretrain`'s shared-prefix trainer), `smollm2` (the hub model converted
offline) and `smollm2_agent` (SmolLM2 fine-tuned on agent episodes). `reproducible` builds
tiny-agent twice and compares the hashes (`python -m agentbench.recipes.reproducible`).

Recipes sit above every other library layer: a build runs tasks, rollouts, distillation and
the experiments' metrics. Nothing below imports them; `agentbench.models` names them by
`"module:attr"` strings and loads one when its name is first built or described.
"""
