"""syncengine: push record changes into Zoho CRM (REST API v2) in bulk.

The contract users depend on is the command line and the TOML file; the Python
names exported here are deliberately few, and a test pins them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
