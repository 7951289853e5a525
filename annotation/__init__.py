"""Projects, roles, items and their audit trail; later imports, exports, drafts and the work queue."""
