"""Azure management calls: registry access (anonymous pull, AcrPull grants) and ADE catalog sync.

Layout, pure modules first:

- `settings`: endpoints (public or sovereign cloud, or the test emulator), scope, CA bundle, bounds.
- `names`: resource ids, the AcrPull role, deterministic role assignment names.
- `errors`: SDK exceptions -> `StalledError` / `TransientError` with scrubbed messages.
- `credentials`: a service principal from a Secret, or the operator's own identity.
- `clients`: the async SDK clients per (subscription, identity), cached and closed at exit.
- `access`: the calls (`ensure_anonymous_pull`, `ensure_acr_pull`, `sync_catalog`).
"""
