"""`make chaos`: the order-to-cash scenario at volume through the four services, as
processes, while services are SIGKILLed and restarted, second instances join and leave,
Kafka is SIGKILLed, PostgreSQL crash-stopped and the registry stopped for a while; then
nothing may be lost, duplicated, unbalanced, unreconciled or dead-lettered but what the
scenario expects.

`flow` plays the scenario through outages, `fleet` runs the services, `infra` breaks and
mends the stack, `monkey` schedules the faults, `verdict` reads the books back, `run` ties
them together; `python -m finsync.scenario.chaos` is the command.
"""
