"""Storage in InfluxDB 1.x: the HTTP transport with retry and spool, the schema of every
measurement, line protocol, the accounts of the store."""
