"""Projects and who may do what in them: the API, the pages and their forms."""
