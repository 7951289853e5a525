"""The judge's model: log p of a few labels as the next token, in the worker (one forward pass per
batch, under the model cache's lock) or from an OpenAI-compatible server's top logprobs."""

from training import model_cache
from training.engine import remote
from training.engine.prompts import Prompt
from training.models import ModelVersion
from training.registry import generation_settings, model_spec


def label_log_probs(
    version: ModelVersion, prompts: list[Prompt], labels: list[str]
) -> list[list[float] | remote.RemoteError]:
    """For each prompt, log p(next token reads as label) per label (-inf: no probability), or the
    server's error for that prompt."""
    if not prompts:
        return []
    spec = model_spec(version)
    if spec.server is not None:
        client = remote.RemoteClient(spec.server)
        return remote.next_token_label_log_probs(client, prompts, labels, system_prompt=spec.system_prompt)
    batch_size = generation_settings(version.generation).batch_size
    with model_cache.lock:
        return model_cache.drafter_for(spec).next_token_log_probs(prompts, labels, batch_size=batch_size)
