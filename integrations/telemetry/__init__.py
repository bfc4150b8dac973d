"""What operators watch the console with.

metrics.py  Prometheus series (LiteLLM's names where the meaning is the same), summed over
            a server's workers; observed where each call's usage row is made
scrape.py   the series read fresh at each scrape: target health, budgets left, the
            configuration generation, experiments
views.py    /metrics, behind a bearer token
files.py    the workers' count files: an ended worker's folded into one archive
tracing.py  the gateway's server span (the client spans live with the one LLM client)
"""
