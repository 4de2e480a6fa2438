"""The alert feed: message contract, journal, catch-up, security, subscriber client, proxy."""
