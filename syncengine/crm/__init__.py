"""The CRM client layer: access tokens, requests, and the error taxonomy."""
