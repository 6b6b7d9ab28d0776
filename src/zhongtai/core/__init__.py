"""Core: settings, database and unit of work, tenancy, principals and permissions, errors, ids, clock,
crypto, outbox and jobs, audit log, rate limiting, health and metrics."""
