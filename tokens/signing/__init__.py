"""JWT signing keys: generation, encryption at rest, rotation, the JWKS, and issuing access tokens."""
