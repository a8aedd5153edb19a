"""QTickets webhooks (qtickets_api.md §12): a durable queue of order ids to re-read."""
