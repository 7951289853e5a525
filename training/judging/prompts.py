"""What a model judge is asked: its prompt template, the conversation, the response(s), and the question
whose answer is one token (a score on the dimension's scale, or A / B)."""

from training.engine.prompts import Prompt

DEFAULT_PROMPT_TEMPLATE = (
    "You are grading an assistant's reply to a customer. Read the conversation and the reply, "
    "then answer with a single number."
)
DEFAULT_PAIR_QUESTION = "Which response is better, A or B? Answer with one letter:"
ROLE_NAMES = {"user": "User", "assistant": "Assistant", "tool": "Tool", "system": "System"}


def conversation_text(*, system: str, messages: list) -> str:
    lines = [f"System: {system}"] if system else []
    for turn in messages or []:
        role = ROLE_NAMES.get(turn.get("role"), str(turn.get("role", "")).capitalize())
        lines.append(f"{role}: {turn.get('content') or ''}")
    return "\n".join(lines)


def _asked(text: str) -> Prompt:
    # One user turn: the model's own chat template (or the version's prompt template) wraps it, so the
    # next token after the assistant's opening is the answer.
    return Prompt(messages=[{"role": "user", "content": text}])


def score_prompt(*, template: str, response, dimension) -> Prompt:
    """The question for one response on one rubric dimension (a review RubricDimension)."""
    criterion = f"{dimension.label}: {dimension.description}" if dimension.description else dimension.label
    return _asked(
        f"{template.strip()}\n\n"
        f"Conversation:\n{conversation_text(system=response.system, messages=response.messages)}\n\n"
        f"Reply to grade:\n{response.text}\n\n"
        f"Criterion: {criterion}\n"
        f"Score for {dimension.label} ({dimension.scale_min}-{dimension.scale_max}):"
    )


def pick_prompt(*, template: str, first, second) -> Prompt:
    """The question for a compare pair with `first` shown as A and `second` as B."""
    return _asked(
        f"{template.strip()}\n\n"
        f"Conversation:\n{conversation_text(system=first.system, messages=first.messages)}\n\n"
        f"Response A:\n{first.text}\n\n"
        f"Response B:\n{second.text}\n\n"
        f"{DEFAULT_PAIR_QUESTION}"
    )
