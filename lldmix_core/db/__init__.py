"""The lldmix database: schema (schema.py), connection and migrations (engine.py), reads and writes
(the store/ package behind one `Store` facade)."""
