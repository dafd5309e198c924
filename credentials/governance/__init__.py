"""Governance shared by both credential kinds: policy, approvals, ownership, reviews, inventory, notices."""
