"""Imported preference pairs: a LLaMA-Factory ranking or TRL preference file becomes pairs to judge.

All or nothing: every record is read and checked first; one bad record fails the import with every
error listed (line, key, reason) and nothing written. Each record becomes two external responses to its
conversation and one pair; the file's own verdict (which was chosen) is kept on the pair as `prior`,
not counted as a judgement: the point of importing is to have people judge, blind.
"""

from __future__ import annotations

import random
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.dataio.conversation import last_user_text
from annotation.importing.jobs import check_file_size
from annotation.models import Project, Role
from annotation.permissions import check_project_role
from annotation.services import audit_record
from core.errors import ApplicationError
from review.models import Pair, PairSource, Response, ResponseOrigin
from review.preference.formats import PAIR_FORMATS, PairError, pairs_read
from review.preference.services import _pair_row

MAX_LISTED_ERRORS = 100


def pairs_import(
    *, project: Project, actor: AbstractBaseUser, stream: BinaryIO, size: int, fmt: str | None = None
) -> dict:
    """Read the file and create its pairs in one transaction; 400 listing every bad record otherwise."""
    check_project_role(user=actor, project=project, roles={Role.ADMIN})
    check_file_size(size=size)
    if fmt is not None and fmt not in PAIR_FORMATS:
        raise ApplicationError(f"format: {fmt!r} is not one of {', '.join(PAIR_FORMATS)}")
    records, errors, total_errors = [], [], 0
    for read in pairs_read(stream, fmt=fmt, max_field_bytes=settings.IMPORT_MAX_FIELD_BYTES):
        if isinstance(read, PairError):
            total_errors += 1
            if len(errors) < MAX_LISTED_ERRORS:
                errors.append(read)
        else:
            records.append(read)
    if errors:
        shown = "; ".join(str(e) for e in errors[:5]) + ("; …" if total_errors > 5 else "")
        raise ApplicationError(
            f"file: {total_errors} record(s) cannot be read, nothing was imported: {shown}",
            code="invalid_file",
            details={"errors": [e.as_dict() for e in errors], "total_errors": total_errors},
        )
    rng = random.Random()
    rows: list[tuple[object, list[Response], str]] = []
    for record in records:
        answers = [(record.chosen, "a"), (record.rejected, "b")]
        # Created in a random order, so the stored order (lower id first) says nothing about the verdict.
        rng.shuffle(answers)
        responses = [
            Response(
                project=project,
                input=last_user_text(record.messages),
                system=record.system,
                messages=record.messages,
                text=text,
                origin=ResponseOrigin.EXTERNAL,
                created_by=actor,
            )
            for text, _side in answers
        ]
        rows.append((record, responses, "a" if answers[0][1] == "a" else "b"))
    with transaction.atomic():
        Response.objects.bulk_create([r for _record, pair, _prior in rows for r in pair], batch_size=2000)
        pairs = Pair.objects.bulk_create(
            (
                _pair_row(
                    project,
                    *pair,
                    source=PairSource.IMPORTED,
                    metadata=record.metadata,
                    prior=prior,
                    actor=actor,
                )
                for record, pair, prior in rows
            ),
            batch_size=2000,
        )
        audit_record(
            actor=actor,
            action="pairs.imported",
            target=project,
            project=project,
            to_state=PairSource.IMPORTED,
            data={"pairs": len(pairs)},
        )
    return {"pairs_created": len(pairs), "first_pair": pairs[0].pk if pairs else None}
