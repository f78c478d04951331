"""PostgreSQL with bounded waits: the database engine ``"ciba.db"`` (``ciba.db.base``)."""
