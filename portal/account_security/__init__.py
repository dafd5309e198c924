"""Account security for people: MFA policy, step-up, session timeouts and their audit trail."""
