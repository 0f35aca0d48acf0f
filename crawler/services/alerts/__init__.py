"""Alerts (docs/alerts.md): `[[alert]]` rules checked against the Parquet after each scheduled run.

model (the rules as data) <- parse (the `[[alert]]` tables) ; surge (the robust score) ;
observe (what the Parquet says for each rule) <- episodes (firing / resolved, from the `alerts`
dataset) ; messages (the text) ; send (Apprise, secrets from the environment) ; service (the
post-run step and `alerts test`). This package module imports none of them, so the config model
can import `model` without a cycle.
"""
