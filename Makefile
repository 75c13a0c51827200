# The two entry points: `make drill` (the DR failover drill on the local lab) and `make test` (everything CI runs).
.PHONY: drill drill-async drill-down bench-drill test unit integration lint sanity lab-up lab-down bench-backup

drill:
	bash scripts/drill.sh

drill-async:
	bash scripts/drill.sh --async

drill-down:
	bash scripts/drill.sh down

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

bench-drill:
	. scripts/lab-ports.sh && reserve_lab_ports && "$$(bash scripts/bootstrap.sh | tail -1)/bin/python" bench/drill.py
