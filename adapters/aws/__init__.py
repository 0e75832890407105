"""The aws adapter: Amazon EventBridge (a custom bus per topic) with an SQS queue per subscription."""
