"""Django-free core of data import, redaction and export, kept apart from the ORM to stay unit-testable."""
