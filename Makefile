# The two entry points: `make test` (everything CI runs) and, with the DR issue, `make drill`.
.PHONY: test unit integration lint sanity lab-up lab-down bench-backup

test:
	bash scripts/test.sh

unit:
	bash scripts/test.sh unit

integration:
	bash scripts/test.sh integration

lint:
	bash scripts/test.sh lint

sanity:
	bash scripts/test.sh sanity

lab-up:
	bash scripts/lab.sh up

lab-down:
	bash scripts/lab.sh down

bench-backup:
	bash scripts/lab.sh up && "$$(bash scripts/bootstrap.sh | tail -1)/bin/python" bench/backup.py
