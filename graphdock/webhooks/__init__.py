"""Webhooks: the URL policy checked when a run or cron is created (:mod:`.policy`) and
the signed, retried delivery of a finished run (:mod:`.delivery`)."""
