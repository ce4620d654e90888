"""Bearer tokens: shown once at creation, kept in the registry only as their SHA-256."""

import hashlib
import secrets

ROLES = ("serve", "admin")
# A recognisable prefix lets secret scanners (and people) tell what a leaked string is.
PREFIX = "mlops_"


def new_token():
    """``(public id, token)``: the id names the token in lists and logs; the token is the secret."""
    return f"tok_{secrets.token_hex(6)}", PREFIX + secrets.token_urlsafe(32)


def token_sha256(token):
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
