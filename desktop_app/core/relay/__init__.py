"""The relay: the catalog's outbox published to NATS JetStream."""
