"""The file host bulk-write uploads go to, from the records API's domain; pure.

Zoho keeps uploads on a host of their own per data centre (crm-bulk-write.md
§1: `content.zohoapis.com` in the US, `.eu`, `.in`, `.com.au`, `.jp`,
`.com.cn`; `upload.zohocloud.ca`; `files.zoho.sa`). Any other domain (the
bundled simulator, a test double) serves uploads itself.
"""

from __future__ import annotations

import re
from typing import Final

import yarl

_ZOHOAPIS: Final = re.compile(r"^(?:www\.)?zohoapis\.(com|eu|in|com\.au|jp|com\.cn)$")
_SPECIAL: Final = {
    "zohoapis.ca": "https://upload.zohocloud.ca",
    "www.zohoapis.ca": "https://upload.zohocloud.ca",
    "zohoapis.sa": "https://files.zoho.sa",
    "www.zohoapis.sa": "https://files.zoho.sa",
}


def upload_url_for(api_domain: str) -> str:
    """`https://content.zohoapis.<tld>` for a Zoho API domain, else the domain itself."""
    host = (yarl.URL(api_domain).host or "").lower()
    if host in _SPECIAL:
        return _SPECIAL[host]
    found = _ZOHOAPIS.match(host)
    if found is not None:
        return f"https://content.zohoapis.{found.group(1)}"
    return api_domain.rstrip("/")
