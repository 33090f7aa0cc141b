# The two commands of the README:
#   make serve   install, then start the server in embedded mode (SQLite, in-process jobs)
#   make test    install, then run the whole test suite
.PHONY: serve test setup lint-imports

serve:
	@scripts/setup.sh
	.venv/bin/workspace serve $(ARGS)

# Two pytest workers (xdist): each worker has its own databases, ports and job namespaces.
test:
	@scripts/setup.sh --test
	.venv/bin/python -m pytest -n 2 $(ARGS)

setup:
	@scripts/setup.sh --test
