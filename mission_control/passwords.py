"""Password hashing with scrypt and a per-user salt, and constant-time verification."""
import functools
import hashlib
import hmac
import secrets

MIN_LENGTH = 12
MAX_LENGTH = 1024
_N, _R, _P, _DKLEN = 2 ** 14, 8, 1, 32


def check_strength(password):
    """Return a problem sentence, or None when the password is acceptable."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        return f"password must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"password must be at most {MAX_LENGTH} characters"
    return None


def hash_password(password):
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password, stored):
    """True when `password` matches `stored`; a malformed `stored` never matches."""
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        candidate = hashlib.scrypt(password.encode()[:4 * MAX_LENGTH], salt=bytes.fromhex(salt),
                                   n=int(n), r=int(r), p=int(p), dklen=len(digest) // 2)
    except (ValueError, AttributeError):
        return False
    return hmac.compare_digest(candidate.hex(), digest)


@functools.cache
def dummy_hash():
    """A hash to verify against when the user does not exist, so both answers take the same time."""
    return hash_password(secrets.token_urlsafe(16))
