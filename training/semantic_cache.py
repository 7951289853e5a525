"""The semantic answer cache: an ask close in meaning to an approved single question gets its answer.

A project turns it on with an embedding model directory (`Project.semantic_cache_model`, e.g.
all-MiniLM-L6-v2) and a similarity (`semantic_cache_threshold`, cosine, default 0.9); the exact cache
(handover.cached_answer) is asked first. Each answered single-question item's normalised question is
embedded once (`QuestionEmbedding`), by the default worker after an approval (training_trigger_check)
and, a few at a time, by the ask itself, so a fresh import is covered without a worker too.

Each web process holds a project's vectors as one float32 matrix and reads only the rows added since
(ids only grow), so a lookup is one indexed query, one matrix product and one query to check the best
matches. Nothing stale answers: the check reads each match's item as it is now; an item sent back to
rework, or asking another question (its `question_key` no longer the embedded one), is passed over,
and the answer given is the item's current approved revision.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from annotation.dataio.conversation import question_key, question_normalise, single_turn
from annotation.models import Item, Project

from .models import QuestionEmbedding
from .selectors import ANSWERED_STATES

logger = logging.getLogger(__name__)

CANDIDATES = 8  # best matches checked against the database per lookup


@dataclass(frozen=True)
class SemanticHit:
    item: int
    answer: str
    similarity: float


@dataclass
class _Index:
    """A project's vectors in this process: row i is item_ids[i]'s question with keys[i]."""

    last_pk: int = 0
    item_ids: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    vectors: np.ndarray | None = None
    refreshed_at: float = 0.0  # monotonic time of the last inline embedding pass
    lock: threading.Lock = field(default_factory=threading.Lock)


_indexes: dict[tuple[int, str], _Index] = {}
_indexes_lock = threading.Lock()


def semantic_enabled(project: Project) -> bool:
    return project.answer_cache and bool(project.semantic_cache_model)


def _embedder(project: Project):
    from .engine.embedding import embedder_for  # torch: loaded only where the cache is on

    return embedder_for(project.semantic_cache_model)


def embeddings_refresh(*, project: Project, limit: int | None = None) -> int:
    """Embed the project's answered single-question items that have no embedding of their current
    question with its model (at most `limit`, oldest approvals first); returns how many."""
    model = project.semantic_cache_model
    current = QuestionEmbedding.objects.filter(
        item=OuterRef("pk"), model=model, question_key=OuterRef("question_key")
    )
    todo = list(
        Item.objects.filter(project=project, status__in=ANSWERED_STATES, current_revision__isnull=False)
        .exclude(question_key="")
        .exclude(Exists(current))
        .order_by("approved_at", "pk")
        .values_list("pk", "question_key", "input")[:limit]
    )
    if not todo:
        return 0
    vectors = _embedder(project).embed([question_normalise(text) for _, _, text in todo])
    with transaction.atomic():
        # an item that asks another question now: its old row goes (lookups would pass it over anyway)
        QuestionEmbedding.objects.filter(model=model, item_id__in=[pk for pk, _, _ in todo]).delete()
        QuestionEmbedding.objects.bulk_create(
            (
                QuestionEmbedding(
                    project=project, item_id=pk, model=model, question_key=key, vector=vector.tobytes()
                )
                for (pk, key, _), vector in zip(todo, vectors, strict=True)
            ),
            ignore_conflicts=True,  # another process embedded the same item meanwhile: its row stands
        )
    return len(todo)


def embeddings_refresh_for(project_id: int) -> int:
    """The worker's pass after an approval (training_trigger_check); a failure is logged, not raised."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None or not semantic_enabled(project):
        return 0
    try:
        return embeddings_refresh(project=project)
    except Exception:
        logger.exception("semantic cache: embedding project %s's questions failed", project_id)
        return 0


def _index_for(project: Project) -> _Index:
    key = (project.pk, project.semantic_cache_model)
    with _indexes_lock:
        return _indexes.setdefault(key, _Index())


def _index_update(project: Project, index: _Index) -> None:
    """Embed a few missing questions now and then (what the worker has not yet), then read new rows."""
    now = time.monotonic()
    if now - index.refreshed_at >= settings.HANDOVER_SEMANTIC_CACHE_REFRESH_S:
        index.refreshed_at = now
        embeddings_refresh(project=project, limit=settings.HANDOVER_SEMANTIC_CACHE_INLINE)
    rows = list(
        QuestionEmbedding.objects.filter(
            project=project, model=project.semantic_cache_model, pk__gt=index.last_pk
        )
        .order_by("pk")
        .values_list("pk", "item_id", "question_key", "vector")
    )
    if not rows:
        return
    added = np.stack([np.frombuffer(bytes(vector), dtype=np.float32) for *_, vector in rows])
    index.vectors = added if index.vectors is None else np.concatenate([index.vectors, added])
    index.item_ids += [item_id for _, item_id, _, _ in rows]
    index.keys += [key for _, _, key, _ in rows]
    index.last_pk = rows[-1][0]


def semantic_answer(*, project: Project, question: str) -> SemanticHit | None:
    """The current approved answer of the most similar answered question at or above the project's
    similarity, or None (also for a question that is not a single one: the exact cache's rule)."""
    if not question_key(system="", messages=single_turn(question)):
        return None
    index = _index_for(project)
    with index.lock:
        _index_update(project, index)
        if index.vectors is None:
            return None
        query = _embedder(project).embed([question_normalise(question)])[0]
        similarities = _dot(index.vectors, query)
        if len(similarities) > CANDIDATES:  # the best few without sorting them all
            top = np.argpartition(-similarities, CANDIDATES)[:CANDIDATES]
        else:
            top = np.arange(len(similarities))
        best = top[np.argsort(-similarities[top])]
        matches = [
            (int(i), float(similarities[i]))
            for i in best
            if similarities[i] >= project.semantic_cache_threshold
        ]
        if not matches:
            return None
        item_ids, keys = index.item_ids, index.keys
    live = {
        pk: (key, text)
        for pk, key, text in Item.objects.filter(
            pk__in=[item_ids[i] for i, _ in matches],
            status__in=ANSWERED_STATES,
            current_revision__isnull=False,
        ).values_list("pk", "question_key", "current_revision__text")
    }
    for i, similarity in matches:
        key, text = live.get(item_ids[i], (None, None))
        if key == keys[i]:  # still answered, still asking the question that was embedded
            return SemanticHit(item=item_ids[i], answer=text, similarity=min(similarity, 1.0))
    return None


def _dot(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """vectors @ query through torch: numpy's BLAS threads and torch's (the embedding just ran) spin
    against each other on a small machine, which made one lookup in twenty take 100 ms instead of 5."""
    import torch

    return (torch.from_numpy(vectors) @ torch.from_numpy(query)).numpy()


def indexes_clear() -> None:
    """Forget every process-held index (tests: ids repeat after a flush)."""
    with _indexes_lock:
        _indexes.clear()
