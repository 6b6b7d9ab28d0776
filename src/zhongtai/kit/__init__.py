"""The kit: what every domain's pages and services share, below every domain and above `core`.

- `rendering`, `page_deps`: console and H5 page rendering (locale, navigation, flash messages, error
  wording) and the page permission dependency;
- `panels`: sections one domain adds to another's page;
- `cache`: a small per-process TTL cache with explicit invalidation;
- `crud`: the console's list / archive / import pattern shared by catalog and channel pages.

The kit imports `core` and `i18n` only; `make lint` (import-linter) keeps it that way.
"""
