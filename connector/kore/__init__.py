"""Everything that speaks the Kore contacts API: JWT auth, the HTTP client, the sandbox."""
