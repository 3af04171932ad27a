"""Test support for the Vibes app: a throwaway PostgreSQL cluster and fault-injected revisions."""
