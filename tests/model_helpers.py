"""Model helpers shared by the engine tests and the Django-side model tests."""

from pathlib import Path


def save_random_lora_adapter(model_dir: Path, out_dir: Path, seed: int) -> Path:
    """A LoRA adapter on q/v projections whose B matrices are random, so it really changes outputs
    (a fresh LoRA has B = 0, the identity)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(out_dir)
    return out_dir
