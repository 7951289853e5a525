"""`ask` latency when the answer cache answers (a question people approved before) against when the model
does (a new question), through the real endpoint, in one command.

    scripts/with-test-services.sh .venv/bin/python bench/ask_cache.py [--approved 100000] [--hits 300]
        [--misses 100]

A project holds --approved approved single-question items (the cache). Its deployed version is the tiny
model on llama.cpp's OpenAI-compatible server (a separate process; `ask` of a served version is answered
from the web process, so no Celery worker is involved on either path). Each request goes through the
Django stack as a client sends it (token auth, throttle, DRF, the service): hits ask approved questions
with other case and spacing, misses ask questions nobody asked. Needs the `test-server` extra.

With --semantic, the semantic cache is then turned on (the tiny model as the embedding model, threshold
--similarity); every approved question is embedded first (timed apart, as the worker would), then
semantic hits ask reworded approved questions and misses ask the unasked ones again, which now pay for
the embedding and the search before the model.
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _setup import project, setup  # noqa: E402


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def approved_items(proj, n: int, author) -> list[str]:
    """n approved single questions, written in bulk (setup, not what is measured)."""
    from django.db import connection
    from django.utils import timezone

    from annotation.models import Item, ItemStatus, Revision, Stage
    from annotation.services import items_create

    questions = [f"How do I change the delivery address of order {i}?" for i in range(n)]
    for start in range(0, n, 10_000):
        items_create(project=proj, actor=None, rows=[{"input": q} for q in questions[start : start + 10_000]])
    items = list(Item.objects.filter(project=proj).values_list("pk", flat=True))
    Revision.objects.bulk_create(
        [Revision(item_id=pk, author=author, stage=Stage.ANNOTATE, text=f"Answer {pk}.") for pk in items],
        batch_size=10_000,
    )
    with connection.cursor() as cursor:  # one statement: bulk_update's CASE over 100,000 rows is slow
        cursor.execute(
            f"UPDATE {Item._meta.db_table} i SET current_revision_id = r.id, status = %s, approved_at = %s "
            f"FROM {Revision._meta.db_table} r WHERE r.item_id = i.id AND i.project_id = %s",
            [ItemStatus.APPROVED, timezone.now(), proj.pk],
        )
    return questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--approved", type=int, default=100_000)
    parser.add_argument("--hits", type=int, default=300)
    parser.add_argument("--misses", type=int, default=100)
    parser.add_argument("--semantic", action="store_true", help="also measure the semantic cache")
    parser.add_argument("--similarity", type=float, default=0.8)
    args = parser.parse_args()
    setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from annotation.models import Membership
    from tests.model_servers import LLAMA_CPP_REQUEST_EXTRA, LlamaServer, tiny_gguf
    from training.engine.tiny_model import build_tiny_model
    from training.registry import model_version_deploy, model_version_register

    settings.HANDOVER_ASK_RATE = "1000000/min"
    settings.ALLOWED_HOSTS = ["*"]
    proj = project("bench-ask-cache")
    proj.confidence_threshold, proj.answered_review_rate = 0.0, 0.0
    proj.save()
    user, _ = get_user_model().objects.get_or_create(username="bench-asker")
    Membership.objects.get_or_create(project=proj, user=user, role="annotator")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    t0 = time.perf_counter()
    questions = approved_items(proj, args.approved, user)
    print(f"{args.approved} approved items written in {time.perf_counter() - t0:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny")
        server = LlamaServer(tiny_gguf(model_dir, Path(tmp) / "tiny.gguf"), threads=1).start()
        try:
            version = model_version_register(
                project=proj, actor=None, name="served", backend="openai", server_url=server.url,
                server_model=server.model, server_api_key=server.api_key,
                server_options={"request_extra": LLAMA_CPP_REQUEST_EXTRA}, generation={"max_new_tokens": 32},
            )  # fmt: skip
            model_version_deploy(version_id=version.pk, actor=None)
            rng = random.Random(0)

            def timed(question: str) -> tuple[float, dict]:
                start = time.perf_counter()
                response = client.post(f"/api/projects/{proj.pk}/ask/", {"question": question}, format="json")
                elapsed = time.perf_counter() - start
                assert response.status_code == 200, response.content
                return elapsed, response.json()

            for q in questions[:5]:
                timed(q)  # warm up both paths (connections, the server's first request)
            timed("warm-up question nobody asked")
            hits, misses = [], []
            for _ in range(args.hits):
                q = rng.choice(questions)
                elapsed, body = timed("  " + q.upper().rstrip("?") + " ?")
                assert body["source"] == "cache", body
                hits.append(elapsed)
            for i in range(args.misses):
                elapsed, body = timed(f"Is there a branch open on Sunday number {i}?")
                assert body["source"] == "model", body
                misses.append(elapsed)
            rows = [(f"cache hits ({args.hits})", hits), (f"misses ({args.misses}, model)", misses)]
            if args.semantic:
                rows += semantic(proj, model_dir, args, questions, timed, rng)
        finally:
            server.stop()

    for name, values in rows:
        print(f"{name:24} p50 {p(values, 50) * 1000:7.1f} ms   p95 {p(values, 95) * 1000:7.1f} ms")
    print(f"p95 miss / hit: {p(misses, 95) / p(hits, 95):.1f}x")
    if args.semantic:
        semantic_hits = rows[2][1]
        print(f"p95 semantic hit / exact hit: {p(semantic_hits, 95) / p(hits, 95):.1f}x")
        print(f"p95 miss / semantic hit: {p(misses, 95) / p(semantic_hits, 95):.1f}x")


def semantic(proj, model_dir, args, questions, timed, rng) -> list[tuple[str, list[float]]]:
    from training import semantic_cache

    proj.semantic_cache_model, proj.semantic_cache_threshold = str(model_dir), args.similarity
    proj.save(update_fields=["semantic_cache_model", "semantic_cache_threshold"])
    t0 = time.perf_counter()
    embedded = semantic_cache.embeddings_refresh(project=proj)
    seconds = time.perf_counter() - t0
    print(
        f"{embedded} questions embedded in {seconds:.1f} s ({embedded / seconds:.0f}/s), as the worker does"
    )
    timed("warm-up: " + questions[0])  # loads the index into this process
    hits, misses = [], []
    for _ in range(args.hits):
        elapsed, body = timed(rng.choice(questions).rstrip("?") + ", please?")
        assert body["source"] == "cache" and "similarity" in body, body
        hits.append(elapsed)
    for i in range(args.misses):
        elapsed, body = timed(f"Is there a branch open on Sunday number {i}?")
        assert body["source"] == "model", body
        misses.append(elapsed)
    return [(f"semantic hits ({args.hits})", hits), (f"misses ({args.misses}, +semantic)", misses)]


if __name__ == "__main__":
    main()
