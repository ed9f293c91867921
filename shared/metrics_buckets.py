"""Histogram bucket upper bounds, in seconds, for /metrics; both backends' schemas seed them (+Inf is added)."""

QUEUE_WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
RUN_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800)
BUCKETS_BY_METRIC = {"queue_wait": QUEUE_WAIT_BUCKETS, "run_time": RUN_TIME_BUCKETS}
