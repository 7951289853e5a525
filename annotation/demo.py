"""The demo project: a bilingual customer-service assistant, one user per role."""

DEMO_PASSWORD_SUFFIX = "-demo-pass"
DEMO_USERS = [
    # (username, role, is_staff)
    ("admin", "admin", True),
    ("annotator", "annotator", False),
    ("expert", "expert", False),
    ("domain_reviewer", "domain_reviewer", False),
]

DEMO_PROJECT = {
    "name": "Customer service assistant",
    "slug": "customer-service",
    "description": "Answers for an online shop's customer-service assistant, in English and Chinese.",
    "guidelines": (
        "Answer as a polite, concise customer-service agent.\n"
        "Never promise refunds or delivery dates you cannot guarantee; point to the order page instead.\n"
        "Reply in the language of the question.\n"
        "Do not repeat personal data (card numbers, phone numbers, ID numbers) back to the customer."
    ),
    "prompt_template": (
        "You are a helpful customer-service assistant for an online shop.\n\nCustomer: {input}"
    ),
    "retrain_threshold": 20,
    "confidence_threshold": 0.5,
    "draft_candidates": 3,
    # The tiny model learns at a high rate in a few dozen steps, so a person sees the loop move.
    "training_hyperparameters": {"learning_rate": 0.01, "epochs": 10},
    "fallback_message": (
        "Thanks for your question — a colleague will answer you shortly. / "
        "感谢您的提问，我们的同事会尽快回复您。"
    ),
}

DEMO_PROMPTS = [
    "Where is my order? I ordered three days ago and the tracking page has not changed.",
    "How do I return a pair of shoes that do not fit?",
    "Can I change the delivery address after I have placed the order?",
    "The blender I received is broken. What should I do?",
    "Do you ship to Canada, and how long does it take?",
    "I was charged twice for the same order. Can you help?",
    "How do I reset my account password?",
    "Is there a discount for ordering ten units of the same item?",
    "What payment methods do you accept?",
    "Can I cancel my order? It has not shipped yet.",
    "My promo code SUMMER10 is not working at checkout.",
    "How long does a refund take to reach my credit card?",
    "The item I want is out of stock. When will it be available again?",
    "Can I pick up my order from a store instead of having it delivered?",
    "The package was left outside and now it is missing.",
    "Do your laptops come with an international warranty?",
    "How can I update the phone number on my account?",
    "I received the wrong colour. Can I exchange it?",
    "Why was my order cancelled automatically?",
    "Can I get an invoice with my company's tax number on it?",
    "我的订单什么时候发货？已经下单两天了。",
    "收到的商品有破损，怎么申请退货？",
    "可以修改订单的收货地址吗？",
    "退款多久能到账？",
    "你们支持货到付款吗？",
    "优惠券为什么不能使用？",
    "我想开具增值税专用发票，需要提供什么信息？",
    "商品缺货的话什么时候补货？",
    "如何修改账户绑定的手机号？",
    "快递显示已签收，但我没有收到包裹。",
    "会员积分可以抵扣运费吗？",
    "订单被重复扣款了，怎么处理？",
    "可以把两个订单合并发货吗？",
    "七天无理由退货的运费由谁承担？",
    "我买的耳机只有一边有声音，能换新吗？",
    "海外地址可以下单吗？",
]
