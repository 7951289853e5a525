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

# Approved-style answers for most demo prompts: the demo's tiny model is warmed up on them, so its drafts
# read like answers (and it drafts the rest imperfectly, which is what people are there to fix).
DEMO_ANSWERS = {
    DEMO_PROMPTS[
        0
    ]: "Sorry for the wait. Tracking can take 48 hours to update; I have checked and your parcel is "
    "on its way. You can follow it on your order page.",
    DEMO_PROMPTS[
        1
    ]: "You can return unworn shoes within 30 days. Open your order page, choose Return, and print "
    "the free label.",
    DEMO_PROMPTS[
        2
    ]: "If the order has not shipped yet, you can change the address on your order page under Edit delivery.",
    DEMO_PROMPTS[
        3
    ]: "I am sorry it arrived broken. Please send us a photo from your order page and we will send "
    "a replacement.",
    DEMO_PROMPTS[4]: "Yes, we ship to Canada. Delivery usually takes 5 to 8 working days.",
    DEMO_PROMPTS[
        5
    ]: "Sorry about that. A double charge is usually a pending authorisation that disappears within "
    "3 days; if not, we will refund it.",
    DEMO_PROMPTS[6]: "Click Forgot password on the login page and follow the link we e-mail you.",
    DEMO_PROMPTS[8]: "We accept credit cards, debit cards, PayPal and Alipay.",
    DEMO_PROMPTS[9]: "Yes. If it has not shipped, open your order page and choose Cancel order.",
    DEMO_PROMPTS[11]: "Refunds reach your card within 5 to 10 working days after we receive the return.",
    DEMO_PROMPTS[13]: "Yes, choose Store pickup at checkout and we will tell you when it is ready.",
    DEMO_PROMPTS[17]: "Sorry for the mix-up. You can exchange it for free from your order page.",
    DEMO_PROMPTS[20]: "您好，订单通常在付款后48小时内发货，发货后您可以在订单页面查看物流信息。",
    DEMO_PROMPTS[21]: "非常抱歉给您带来不便。请在订单页面上传商品照片并申请退货，我们会尽快为您处理。",
    DEMO_PROMPTS[22]: "如果订单尚未发货，您可以在订单页面点击修改地址。",
    DEMO_PROMPTS[23]: "退款会在我们收到退货后5到10个工作日内退回到您的原支付账户。",
    DEMO_PROMPTS[24]: "目前暂不支持货到付款，您可以使用银行卡、支付宝或微信支付。",
    DEMO_PROMPTS[25]: "请确认优惠券是否在有效期内，并且订单金额满足使用条件。",
    DEMO_PROMPTS[28]: "请登录账户，在账户设置中选择修改手机号，并按提示完成验证。",
    DEMO_PROMPTS[29]: "非常抱歉。请先询问家人或快递柜，如仍未找到，请联系我们，我们会为您核实。",
}
