"""Asset checks that replace the old smoke SQL (see issue: warehouse)."""
