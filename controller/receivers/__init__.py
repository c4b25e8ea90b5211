"""Webhook receivers: push events of git hosts and registries turned into immediate reconciles.

`events` (what an event says), `authentication` (is it from who holds the token), `payloads`
(each host's documented shape read into `events`), `replays` (deliveries seen), `matching` (which
RunnerImages an event concerns), `paths` (a WebhookReceiver's path and status), all pure; then
`directory` (cached reads of the API server), `nudges` (the reconcile requests) and `server` (the
HTTP endpoint).
"""
