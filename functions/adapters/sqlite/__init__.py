"""The SQLite ledger: one file, safe across threads and processes on one machine.

One module per port (`runs`, `queue`, `joins`, `decisions`, `events`, `quotas`), each a part
that works on a shared `database.Database`; `ledger.SqliteLedger` composes them into the one
object the services see, so that a claim and the records around it share one file and one
commit. `schema` holds the tables, `riders` the writes that ride on another part's commit.
"""
