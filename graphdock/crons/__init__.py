"""Crons: schedules (:mod:`.schedule`), request models (:mod:`.models`) and the scheduler
that fires them (:mod:`.scheduler`). Their semantics live in :mod:`graphdock.services.crons`."""
