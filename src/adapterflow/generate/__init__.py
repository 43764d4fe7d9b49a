"""Generated data: long-context sets (needle in a haystack, QA) built from prepared corpora."""
