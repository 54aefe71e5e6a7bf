"""Job metrics (Prometheus): how long each run took, how many rows it touched, failures."""

from prometheus_client import Counter, Histogram

JOB_SECONDS = Histogram(
    "callcenter_job_duration_seconds", "How long one run of a scheduler job took.", ["job"]
)
JOB_ROWS = Counter("callcenter_job_rows_total", "Rows a scheduler job touched.", ["job"])
JOB_FAILURES = Counter(
    "callcenter_job_failures_total", "Runs or batches of a scheduler job that failed.", ["job"]
)
