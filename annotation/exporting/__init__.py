"""Exports: reviewed samples, redacted, in the formats training tools read, with their dataset_info entry."""
