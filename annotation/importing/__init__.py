"""Imports: a file becomes items through an ImportJob (`jobs`), previewed first if asked (`preview`).

The public names live here; `jobs` says how a job runs, `staging` holds its temporary table.
"""

from annotation.importing.jobs import (
    TooLarge,
    check_file_size,
    check_import_options,
    import_job_create,
    import_job_get_for_user,
    import_job_run,
    import_job_start,
    import_jobs_fail_stale,
    import_jobs_recent,
)
from annotation.importing.preview import PREVIEW_MAX_RECORDS, PREVIEW_ROWS, ImportPreview, import_preview

__all__ = [
    "PREVIEW_MAX_RECORDS", "PREVIEW_ROWS", "ImportPreview", "TooLarge", "check_file_size",
    "check_import_options", "import_job_create", "import_job_get_for_user", "import_job_run",
    "import_job_start", "import_jobs_fail_stale", "import_jobs_recent", "import_preview",
]  # fmt: skip
