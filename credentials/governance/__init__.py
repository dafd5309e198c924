"""Governance of every credential kind: policy, requests and approvals, ownership, reviews, notices.

The writes live in one module per concern (`org_policy`, `approvals`, `ownership`, `edits`,
`reviews`, `notices`, with `common` for the lock/save/audit helpers). Each service takes
keyword-only arguments, runs in one transaction, locks the rows it changes
(select_for_update) and writes exactly one audit event with the actor. Kinds are known only
through `registry.GovernedKind` declarations.
"""
