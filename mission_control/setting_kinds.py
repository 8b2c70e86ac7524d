"""What a text setting means (URL, host, path, e-mail, duration, cron): one check per kind, shared.

A `SettingDef` with ``kind=URL`` (say) is checked by `URL` whatever plugin declares it, and the
OpenAPI document describes it with the kind's pattern. Every kind trims spaces and tabs around
the value; an empty value is accepted only by a setting whose default is empty ("" turns it off).
"""
import ipaddress
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses
from urllib.parse import urlsplit

from .scheduling.cron import FIELD_PATTERN
from .scheduling.cron import check_schedule

#: Trimmed around every kind's value (and each address of a list). Not line breaks: a value that
#: holds one is refused, as in any text setting, rather than quietly mended.
_SPACE = " \t"
#: Never in a setting: controls (C0 but tab, DEL, C1) and the line and paragraph separators, which
#: a value would carry into a mail header (the site name in a subject) and end it there.
NOT_PRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_DISPLAY = re.compile(r"[^<>\"@,;:\\()\[\]]*")
_UNITS = {"h": 3600, "m": 60, "s": 1}
_HOST_CHARS = r"[A-Za-z0-9_.:%-]+"


@dataclass(frozen=True)
class Kind:
    """One kind of text setting.

    `check(text, secret)` takes the trimmed, non-empty value and returns the value to store, or
    raises ValueError whose message says what the value must be (the API answers 400 naming the
    setting). `pattern` is the unanchored JSON-Schema (ECMA) regex of the OpenAPI document: every
    value `check` accepts matches it, so a client may refuse what does not match before sending.
    """

    name: str
    must: str
    pattern: str
    check: object

    def clean(self, value, *, secret=False, optional=False):
        """The value to store for `value` (trimmed), or raise ValueError with the reason."""
        text = value.strip(_SPACE)
        if NOT_PRINTABLE.search(text):
            raise ValueError(f"must be {self.must}, without control characters or line "
                             "separators")
        return "" if not text and optional else self.check(text, secret)

    def schema_pattern(self, optional):
        """The anchored pattern for the OpenAPI document (empty allowed when `optional`)."""
        return rf"^\s*(?:{self.pattern}){'?' if optional else ''}\s*$"


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_name(text):
    """A DNS name: letters, digits, `-` and `_` in labels of at most 63, not ending in digits."""
    labels = (text[:-1] if text.endswith(".") else text).split(".")
    # All digits at the end is a mistyped IPv4 address, not a name.
    return len(text) <= 254 and all(_LABEL.fullmatch(label) for label in labels) and \
        not labels[-1].isdigit()


def _host(text, secret=False):
    if not re.fullmatch(_HOST_CHARS, text) or not (_is_ip(text) or _is_name(text)):
        raise ValueError("must be a host name or an IP address")
    return text


def _url(text, secret):
    must = "must be an http(s) URL with a host, such as https://example.com/path"
    if not re.fullmatch(r"[!-~]+", text) or "\\" in text:
        raise ValueError(must)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is no port
    except ValueError:
        raise ValueError(must) from None
    host = parts.hostname or ""
    if parts.scheme.lower() not in ("http", "https") or not text[len(parts.scheme):].startswith(
            "://") or not host or (":" in host) != ("[" in parts.netloc):
        raise ValueError(must)
    if "@" in parts.netloc and not secret:
        raise ValueError("must not hold a user name or password (user:password@): this setting "
                         "is not secret, so they would be shown to every admin")
    _host(host)
    return text


def _path(text, secret=False):
    if not text.startswith("/"):
        raise ValueError("must be an absolute path (starting with /)")
    return text


def check_address(text):
    """`text` if it is one e-mail address (``ops@example.com`` or ``Ops <ops@example.com>``).

    :raises ValueError: anything else.
    """
    must = "must be an e-mail address such as ops@example.com or Ops <ops@example.com>"
    display, sep, rest = text.partition("<") if "<" in text else ("", "", text)
    address = rest[:-1] if sep and rest.endswith(">") else None if sep else rest
    if address is None or not _DISPLAY.fullmatch(display) or address.count("@") != 1:
        raise ValueError(must)
    local, domain = address.split("@")
    # A host name may end in a dot (its root); an address's domain may not (RFC 5322's
    # dot-atom), and a mail's From of one reads back as no address at all.
    if not _LOCAL_PART.fullmatch(local) or domain.endswith(".") or not _is_name(domain):
        raise ValueError(must)
    if getaddresses([text]) != [(display.strip(), address)]:  # what the mail plugin reads back
        raise ValueError(must)
    if _mailed_address(text) != address:
        raise ValueError(must)
    return text


def _mailed_address(text):
    """The address a mail's receiver reads from a `From:` of `text` (its header written and
    parsed again, as the mail plugin's messages are), or None when it reads none: Python's
    strict parser stumbles on some display names the lenient one takes (``.<a@b>``)."""
    message = EmailMessage()
    try:
        message["From"] = text
        parsed = message_from_bytes(message.as_bytes(), policy=policy.default)["From"]
        return parsed.addresses[0].addr_spec if len(parsed.addresses) == 1 else None
    except Exception:  # noqa: BLE001 - any failure of the parser: not an address it reads
        return None


def _addresses(text, secret=False):
    found = [check_address(item.strip(_SPACE)) for item in text.split(",") if item.strip(_SPACE)]
    if not found:
        raise ValueError("must be e-mail addresses separated by commas")
    return ", ".join(found)


def duration_seconds(text):
    """Seconds in a Go-style duration of hours, minutes and seconds (``"72h"``, ``"1h30m"``)."""
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([hms])", text))


#: Go-style durations (what Litestream reads): hours, minutes, seconds, in that order.
DURATION_PATTERN = r"(?=\d)(\d+h)?(\d+m)?(\d+s)?"


def duration(minimum, maximum):
    """The kind of Go-style durations (``72h``, ``90m``, ``1h30m``) from `minimum` to `maximum`
    seconds, both included."""
    must = f"must be a duration such as 72h, 90m or 1h30m, from {_words(minimum)} to " \
           f"{_words(maximum)}"

    def check(text, secret=False):
        if not re.fullmatch(DURATION_PATTERN, text) or len(text) > 32 or \
                not minimum <= duration_seconds(text) <= maximum:
            raise ValueError(must)
        return text
    return Kind("duration", must, DURATION_PATTERN, check)


def _words(seconds):
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_ADDRESS = r"(?:[^<>@,\"]*<)?[^\s<>@,]+@[^\s<>@,]+>?"

URL = Kind("url", "an http(s) URL with a host",
           r"[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#\\]+(?:[/?#][!-~]*)?", _url)
HOST = Kind("host", "a host name or an IP address", _HOST_CHARS, _host)
PATH = Kind("path", "an absolute path", "/.*", _path)
EMAIL = Kind("email", "an e-mail address", _ADDRESS, lambda text, secret: check_address(text))
EMAILS = Kind("emails", "e-mail addresses separated by commas",
              rf"[\s,]*{_ADDRESS}(?:\s*,[\s,]*{_ADDRESS})*[\s,]*", _addresses)
CRON = Kind("cron", "a 5-field cron expression (UTC)",
            rf"{FIELD_PATTERN}(?:\s+{FIELD_PATTERN}){{4}}",
            lambda text, secret: check_schedule(text))
