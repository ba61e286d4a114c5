"""One run of one tenant: ``run_once`` and the ``RunContext`` it carries."""
