"""`webhooks.publish`: store the event, fan it out to one delivery per subscription."""
