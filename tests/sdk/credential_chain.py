"""Prints which credentials the official Python SDK's default chain picks, as one JSON line.

Run with a prepared environment (HOME, ALIBABA_CLOUD_*); the Rust test compares the answer with
sgpolicy's own chain for the same environment. Only links that need no network are compared.
"""
import json

try:
    from alibabacloud_credentials.provider.default import DefaultCredentialsProvider

    c = DefaultCredentialsProvider().get_credentials()
    print(json.dumps({
        "provider": c.get_provider_name(),
        "id": c.get_access_key_id(),
        "token": c.get_security_token(),
    }))
except Exception as e:  # the chain's own "nothing found" error
    print(json.dumps({"error": str(e)}))
