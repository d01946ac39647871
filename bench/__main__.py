"""`python -m bench`: run every benchmark and print its table."""

from bench import (
    cold_start,
    costs,
    filters,
    ledger_growth,
    partitions,
    plan,
    reliability,
    retention,
    round_trips,
    scaling,
    serving,
    status_page,
    storm,
    trigger_path,
)

if __name__ == "__main__":
    serving.main()
    cold_start.main([])
    trigger_path.main()
    filters.main([])
    reliability.main()
    retention.main([])
    status_page.main([])
    round_trips.main([])
    costs.main([])
    ledger_growth.main([])
    partitions.main([])
    plan.main([])
    storm.main([])
    scaling.main()
