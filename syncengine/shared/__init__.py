"""One org, one budget: the limits several processes of one CRM org share in PostgreSQL.

With `[limits] shared = "postgresql://..."` every process whose config names
the same org (`[crm] client_id` and `api_domain`) shares, through one
database: the org's request slots (`slots`), the CRM's last credits count
(`credits`), and the cached access token with single-flight refresh
(`tokens`). `org.open_shared_org` opens them for a pass.
"""
