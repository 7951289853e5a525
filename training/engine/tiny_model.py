"""Build a tiny, randomly initialised chat model offline, so the model code path runs without downloads."""

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
TURN_START, TURN_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, TURN_START, TURN_END]

# ChatML-style turns. The end of a turn is the tokenizer's EOS token, so generation stops when the
# assistant's turn ends.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_DEFAULT_CORPUS = [
    "Hello, thank you for contacting customer support. How can I help you today?",
    "I'm sorry to hear that your order arrived damaged.",
    "Could you please share your order number so I can look into this?",
    "Your refund has been processed and should appear within five business days.",
    "I have reset your password. Please check your email for the link.",
    "The package is on its way and will arrive tomorrow afternoon.",
    "Unfortunately this item is out of stock, but we can notify you when it returns.",
    "You can change your delivery address in the account settings page.",
    "Our store is open from nine in the morning until six in the evening.",
    "I understand your frustration, and I will escalate this to our team.",
    "Is there anything else I can help you with?",
    "Thank you for your patience while we resolve this issue.",
    "The warranty covers manufacturing defects for one year.",
    "Please restart the device and try connecting again.",
    "We have applied a discount code to your next purchase.",
    "Your subscription will renew automatically at the end of the month.",
    "I can cancel the order for you if it has not shipped yet.",
    "The invoice has been sent to the email address on file.",
    "My order is late. Where is it?",
    "How do I return a product I bought last week?",
    "您好，感谢您联系客服。请问有什么可以帮您？",
    "很抱歉您收到的商品有损坏。",
    "请提供您的订单号，我来帮您查询。",
    "您的退款已经处理，预计五个工作日内到账。",
    "我已经为您重置了密码，请查收邮件中的链接。",
    "您的包裹正在配送中，预计明天下午送达。",
    "很遗憾，该商品暂时缺货，到货后我们会通知您。",
    "您可以在账户设置页面修改收货地址。",
    "我们的营业时间是早上九点到晚上六点。",
    "我理解您的心情，我会把这个问题上报给相关团队。",
    "请问还有其他可以帮您的吗？",
    "感谢您的耐心等待，我们正在处理您的问题。",
    "保修期为一年，涵盖制造缺陷。",
    "请重启设备后再尝试连接。",
    "我们已经为您的下次购物添加了优惠券。",
    "您的订阅将在月底自动续费。",
    "如果订单还没有发货，我可以帮您取消。",
    "发票已发送到您登记的邮箱。",
    "我的订单怎么还没到？",
    "上周买的东西怎么退货？",
]


def default_corpus() -> list[str]:
    """A few dozen English and Chinese customer-service sentences, enough to train a small BPE."""
    return list(_DEFAULT_CORPUS)


def _train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    # Byte-level BPE: every UTF-8 string (Chinese included) encodes with no unknown token, because the
    # 256 byte symbols are always in the vocabulary.
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=TURN_END,
        additional_special_tokens=[EOS, TURN_START],
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )


def build_tiny_model(
    out_dir: Path,
    texts: Iterable[str] | None = None,
    *,
    vocab_size: int = 4000,
    seed: int = 0,
    hidden_size: int = 256,
    num_layers: int = 2,
) -> Path:
    """Train a tokenizer on `texts` (default: `default_corpus()`), build a random Llama, save both.

    The result is an ordinary Hugging Face directory: `AutoTokenizer.from_pretrained(out_dir)` and
    `AutoModelForCausalLM.from_pretrained(out_dir)` load it. The same texts and seed give the same files.
    """
    out_dir = Path(out_dir)
    tokenizer = _train_tokenizer(default_corpus() if texts is None else texts, vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        # A wider init than the usual 0.02 gives peaked next-token distributions, so greedy choices are
        # decided by clear margins rather than by float rounding (batched vs single runs must agree).
        initializer_range=0.2,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
