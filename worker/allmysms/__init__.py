"""The AllMySMS HTTP API v9.0: client, status codes, request payload, and the flux parser."""
