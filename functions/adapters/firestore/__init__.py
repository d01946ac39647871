"""The Firestore ledger: the same contract as the SQLite ledger, across instances.

One module per port (`runs`, `queue`, `joins`, `decisions`, `events`, `quotas`), each a part
that works on a shared `database.Database` (the client, the collections, transactions and the
TTL field); `ledger.FirestoreLedger` composes them into the one object the services see.
`riders` holds the writes that ride on another part's commit.
"""
